"""One shape of `details` for every error: a list of objects, each with a `reason`, the `field` when there is one,
and the error's other facts in camelCase."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import Response

from prepaid.domain import errors
from prepaid.edge.http import detail_list, domain_error_response, validation_error_response


def error_of(answer: Response[Any]) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(str(answer.body))["error"]
    return error


def test_a_domain_errors_fields_are_one_detail_with_its_reason_and_field() -> None:
    # Given an amount refused for a reason, in a field
    refused = errors.InvalidAmount(field="price.amount", value="1.001", reason="finer_than_minor_unit")
    # Then its details are one object: its reason, its field, its other facts
    assert detail_list(refused) == [{"reason": "finer_than_minor_unit", "field": "price.amount", "value": "1.001"}]


def test_an_error_without_a_reason_gives_its_code_and_its_facts_in_camel_case() -> None:
    declined = errors.PaymentDeclined(card_id="c-1", decline_code="generic_decline")
    assert detail_list(declined) == [{"reason": "payment_declined", "cardId": "c-1", "declineCode": "generic_decline"}]


def test_an_error_with_no_facts_has_no_details() -> None:
    answer = domain_error_response(errors.PriceBookMissing())
    assert "details" not in error_of(answer)


def test_validation_and_domain_errors_share_the_shape() -> None:
    # Given a validation error and a currency refusal, as the API answers them
    invalid = validation_error_response([{"loc": ("body", "credits"), "type": "missing", "msg": "Field required"}])
    unknown = domain_error_response(errors.UnsupportedCurrency(currency="ABC", reason="not_iso_4217"))
    # Then both carry a list of objects with a reason, the field where there is one
    assert error_of(invalid)["details"] == [{"field": "body.credits", "reason": "missing", "message": "Field required"}]
    assert error_of(unknown) == {
        "code": "unsupported_currency",
        "message": "currency ABC is not an ISO 4217 currency code",
        "details": [{"reason": "not_iso_4217", "currency": "ABC"}],
    }
