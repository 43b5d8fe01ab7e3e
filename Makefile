# Every CI step is a target here; `make test` is exactly what CI runs (.ci/run).
PY := .venv/bin/python
POSTLINE_POLICY ?= postline.dev.yaml

.PHONY: run test install protos protos-check observability lint typecheck unit integration e2e browser bench bench-e2e fuzz faults clock-check clean

run: install                       ## the whole system locally (Ctrl-C stops it)
	$(PY) -m postline.devstack --policy $(POSTLINE_POLICY)

test: install protos-check lint typecheck   ## every check and every test
	$(PY) -m pytest -q

install:
	@scripts/bootstrap.sh

protos:                            ## regenerate packages/contracts from proto/
	$(PY) scripts/gen_protos.py

protos-check:                      ## fail if packages/contracts is stale
	$(PY) scripts/gen_protos.py --check

observability:                     ## rewrite the PrometheusRule from the alert rules file
	$(PY) scripts/gen_prometheus_rule.py

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck:
	.venv/bin/mypy packages/common/src services tools/simulator/src tools/devstack/src
	cd bench/bounce_accuracy && ../../.venv/bin/mypy mtas  # the bench's MTA harness, imported as a package from its own folder

unit:
	$(PY) -m pytest -q tests/unit

integration:
	$(PY) -m pytest -q tests/integration

e2e:
	$(PY) -m pytest -q tests/e2e

browser:                           ## the console in chromium; screenshots in build/screenshots
	$(PY) -m pytest -q tests/browser

bench:                             ## the benchmarks (slow; not part of test), see bench/README.md
	$(PY) bench/bounce_accuracy/run.py
	$(PY) bench/smtp_accept/run.py
	$(PY) bench/sender/run.py
	$(PY) bench/scheduler/run.py
	$(PY) bench/reports/run.py
	$(PY) bench/telemetry/run.py
	$(PY) bench/webhooks/run.py
	$(PY) bench/e2e/run.py
	$(PY) bench/floor/run.py

bench-e2e:                         ## Postline end to end next to a Postfix relay (bench/README.md)
	$(PY) bench/e2e/run.py

fuzz: install                      ## 10,000 SMTP fuzz cases (figures in bench/README.md)
	@mkdir -p var
	POSTLINE_FUZZ_CASES=10000 POSTLINE_FUZZ_REPORT=var/fuzz.json \
		$(PY) -m pytest -q tests/integration/test_smtp_fuzz.py

faults: install                    ## the fault suite, longer (figures in bench/README.md)
	@mkdir -p var
	POSTLINE_FAULT_MESSAGES=3000 POSTLINE_FAULT_ROUNDS=2 POSTLINE_FAULT_TIMEOUT=3600 \
		POSTLINE_FAULT_REPORT=var/faults.json POSTLINE_FAULT_KEEP=var/faults-run $(PY) -m pytest -q -s tests/e2e/test_faults.py

clock-check: install                ## unit + integration tests at clock boundaries (libfaketime; slow; not part of test)
	scripts/clock_check.sh

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
