-- vbench results store, schema version 1: one row per published run, its variants, its samples.
-- Everything lives in the schema "vbench"; nothing outside it is created or changed.

CREATE TABLE vbench.runs (
    id             bigserial PRIMARY KEY,
    run_id         text        NOT NULL,            -- the run directory name / run.json run_id
    host           text        NOT NULL DEFAULT '', -- environment.host: run ids are unique per host
    content_hash   text        NOT NULL,            -- sha256 of run.json + samples: same hash, same run
    scenario       text        NOT NULL DEFAULT '',
    status         text        NOT NULL DEFAULT '', -- complete | incomplete | running
    started        text        NOT NULL DEFAULT '', -- as recorded in run.json
    started_at     timestamptz,                     -- parsed, for time axes (Grafana)
    finished       text,
    accelerator    text,
    record_version integer     NOT NULL,            -- run.json's own schema_version
    record         json        NOT NULL,            -- run.json as the run wrote it (json keeps key order)
    environment    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    sample_count   integer     NOT NULL,
    published_at   timestamptz NOT NULL DEFAULT now(),
    published_by   text        NOT NULL DEFAULT current_user,
    UNIQUE (run_id, host)
);
CREATE INDEX runs_scenario_started ON vbench.runs (scenario, started_at);

CREATE TABLE vbench.variants (
    run           bigint  NOT NULL REFERENCES vbench.runs (id) ON DELETE CASCADE,
    name          text    NOT NULL,
    device        text    NOT NULL DEFAULT '',
    model         text    NOT NULL DEFAULT '',
    paravirtual   boolean,
    baseline      boolean,
    guest_kernel  text,
    boot_seconds  double precision,
    verified      boolean,                          -- every device's driver verified in the guest
    domain_xml    text,
    PRIMARY KEY (run, name)
);

-- One row per measured number, the columns of samples.csv (vbench.model.SAMPLE_COLUMNS).
CREATE TABLE vbench.samples (
    run          bigint  NOT NULL REFERENCES vbench.runs (id) ON DELETE CASCADE,
    ordinal      integer NOT NULL,                  -- row order in samples.csv (faithful export)
    run_id       text    NOT NULL,
    scenario     text    NOT NULL,
    variant      text    NOT NULL,
    device       text    NOT NULL,
    model        text    NOT NULL,
    paravirtual  boolean,
    workload     text    NOT NULL,
    repetition   integer,
    metric       text    NOT NULL,
    value        double precision,
    unit         text    NOT NULL,
    accelerator  text    NOT NULL,
    host         text    NOT NULL,
    PRIMARY KEY (run, ordinal)
);
CREATE INDEX samples_metric ON vbench.samples (scenario, workload, metric, variant);

-- For SQL clients and Grafana: every sample with its run's time and publication facts.
CREATE VIEW vbench.sample_facts AS
SELECT r.started_at, r.status, r.content_hash, s.run_id, s.host, s.scenario, s.variant, s.device,
       s.model, s.paravirtual, s.workload, s.repetition, s.metric, s.value, s.unit, s.accelerator
FROM vbench.samples s JOIN vbench.runs r ON r.id = s.run;
