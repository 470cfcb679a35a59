# Two commands set everything up on a fresh machine: `make local` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY312 := $(firstword $(wildcard /root/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12 2>/dev/null))
PYTHON ?= $(if $(PY312),$(PY312),python3)
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAM_STAMP := $(SAM_VENV)/.installed
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: help venv sam-venv checkov-venv lint typecheck template test unit packaging browser local demo bench deploy clean

help:
	@echo "make local   run the system on http://127.0.0.1:3000 (embedded moto, real handlers)"
	@echo "make demo    a scripted story against a running 'make local ARGS=--seed' (another shell)"
	@echo "make test    lint, type-check, template checks, SAM build, tests (installs chromium if missing)"
	@echo "make bench   benchmarks with a baseline measured in the same run"
	@echo "make deploy  sam build, then sam deploy --guided (ARGS=... for sam deploy's own options)"

$(STAMP): requirements-dev.txt layers/prepaid/requirements.txt client/pyproject.toml
	@$(PYTHON) -c 'import sys; v=sys.version_info; sys.exit(0 if v >= (3, 11) else "Python >= 3.11 is needed (3.12 preferred: the Lambda runtime)")'
	@$(PYTHON) -c 'import sys; sys.version_info[:2] == (3, 12) or print("note: building .venv with Python %d.%d; the Lambda runtime is 3.12" % sys.version_info[:2])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

venv: $(STAMP)

# aws-sam-cli pins its own boto3 and cfn-lint, so it lives in a venv of its own.
$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0
	touch $@

sam-venv: $(SAM_STAMP)

# checkov pins its own boto3 (and networkx), so it too lives in a venv of its own.
$(CHECKOV_STAMP):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q --upgrade pip
	$(CHECKOV_VENV)/bin/pip install -q checkov==3.3.30
	touch $@

checkov-venv: $(CHECKOV_STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy layers/prepaid/prepaid functions local demo client tests $(wildcard bench/*.py)

# checkov fails on any failed check; each check the template does not meet is skipped there with its reason.
template: venv sam-venv checkov-venv
	$(BIN)/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --template-file template.yaml --region us-east-1
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --skip-download --compact --quiet

# sam build needs the runtime's Python first on PATH to build python3.12 for arm64.
packaging: template
	PATH="$(dir $(PYTHON)):$$PATH" $(SAM_VENV)/bin/sam build --template-file template.yaml --build-dir .aws-sam/build >/dev/null

# The dashboard's browser test runs Debian's chromium (headless); installed here when missing (sudo unless root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; }

test: lint typecheck packaging browser
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=15

unit: venv
	$(BIN)/pytest -q tests/unit

local: venv
	PYTHONPATH=local:layers/prepaid $(BIN)/python -m prepaid_local $(ARGS)

# Against the system `make local` runs in another shell; ARGS="--url ... --moto-url ... --events N" to change it.
demo: venv
	PYTHONPATH=local:demo $(BIN)/python -m prepaid_demo $(ARGS)

# Cold starts (cold_start.py), the usage pipeline's cost against baselines (run.py), then latency on the local
# stack (latency.py).
bench: venv
	PYTHONPATH=local:layers/prepaid:bench $(BIN)/python bench/cold_start.py
	PYTHONPATH=local:layers/prepaid:bench $(BIN)/python bench/run.py $(ARGS)
	PYTHONPATH=local:demo $(BIN)/python bench/latency.py

# Build and deploy to the AWS account and region of your credentials; ARGS="--stack-name ... --parameter-overrides
# ..." are passed to sam deploy (without them it asks, and keeps the answers in samconfig.toml).
deploy: packaging
	PATH="$(dir $(PYTHON)):$$PATH" $(SAM_VENV)/bin/sam deploy --template-file .aws-sam/build/template.yaml \
	  --capabilities CAPABILITY_IAM --resolve-s3 $(if $(ARGS),$(ARGS),--guided)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .aws-sam .mypy_cache .ruff_cache .hypothesis
