"""Run prepaid-credits on one machine: embedded moto, resources and wiring read from template.yaml."""
