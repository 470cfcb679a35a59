"""EventBridge Scheduler: one-time schedules that deliver a payload to the lifecycle function, then go away."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from types_boto3_scheduler import EventBridgeSchedulerClient


class OneTimeSchedules:
    """`at(...)` schedules in one group, targeting one function with one role; deleted after they run."""

    def __init__(self, client: EventBridgeSchedulerClient, group: str, target_arn: str, role_arn: str) -> None:
        self._client = client
        self._group = group
        self._target = target_arn
        self._role = role_arn

    def once(self, name: str, at: datetime, payload: dict[str, Any]) -> None:
        # `at()` takes whole seconds: round up, so a schedule never fires before its instant.
        seconds = math.ceil(at.astimezone(UTC).timestamp())
        when = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        try:
            self._client.create_schedule(
                Name=name,
                GroupName=self._group,
                ScheduleExpression=f"at({when})",
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                Target={
                    "Arn": self._target,
                    "RoleArn": self._role,
                    "Input": json.dumps(payload, separators=(",", ":")),
                    "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConflictException":
                raise  # an existing schedule of that name is this one, made by an earlier delivery
