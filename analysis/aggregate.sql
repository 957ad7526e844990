-- llm-ab: the bucket-level sums of an experiment analysis, computed where
-- the records are (a warehouse or a log store), for `llm-ab report
-- --aggregates FILE` (this query's result as CSV with a header, or JSON
-- lines). It gives exactly the report `llm-ab report --records` gives.
--
-- Tables:
--   llm_ab_records   one row per access-log record, a column per record
--                    field (trace_id, start_unix_ms, experiment_id,
--                    assigned_variant, reason, bucket, unit_id, outcome,
--                    schema_pass, cost_usd_est, tokens_in, tokens_out,
--                    latency_ms; a missing unit_id or start_unix_ms: NULL)
--   llm_ab_outcomes  the app's business outcomes: trace_id, metric, value
--                    (may be empty)
--
-- One row per (experiment, assigned variant, bucket, UTC day), and one per
-- outcome metric of such a cell (outcome_metric not empty: only its
-- outcome_micro counts). Sums are integers: cost in nano-USD and outcome
-- values in millionths, each record's rounded before it is added, so that
-- no engine's order of addition changes a digit of the report.
--
-- Standard SQL (window functions, CASE, COUNT(DISTINCT)); tested unchanged
-- with DuckDB. See the README ("Warehouse-native analysis") for BigQuery
-- and ClickHouse.

WITH r AS (
  -- The records the analysis counts: in an experiment, with a bucket, not
  -- forced and with a sticky key (intention-to-treat: the assigned variant).
  SELECT
    trace_id,
    experiment_id,
    assigned_variant AS variant,
    bucket,
    COALESCE(start_unix_ms, 0) AS start_unix_ms,
    CAST(FLOOR(COALESCE(start_unix_ms, 0) / 86400000) AS BIGINT) AS utc_day,
    unit_id,
    outcome,
    schema_pass,
    CAST(ROUND(COALESCE(cost_usd_est, 0) * 1000000000) AS BIGINT) AS cost_nano_usd,
    COALESCE(tokens_in, 0) AS tokens_in,
    COALESCE(tokens_out, 0) AS tokens_out,
    COALESCE(latency_ms, 0) AS latency_ms
  FROM llm_ab_records
  WHERE experiment_id IS NOT NULL
    AND assigned_variant IS NOT NULL
    AND bucket IS NOT NULL AND bucket >= 0 AND bucket < 10000
    AND COALESCE(reason, '') NOT IN ('no_key', 'forced')
),
ru AS (
  -- Each unit id's first day in its experiment, variant and bucket (a
  -- unit id has one bucket: both come from the same sticky key).
  SELECT r.*,
    MIN(utc_day) OVER (PARTITION BY experiment_id, variant, bucket, unit_id) AS unit_first_day
  FROM r
),
o AS (
  SELECT trace_id, metric, SUM(CAST(ROUND(value * 1000000) AS BIGINT)) AS value_micro
  FROM llm_ab_outcomes
  WHERE trace_id IS NOT NULL AND metric IS NOT NULL AND metric <> '' AND value IS NOT NULL
  GROUP BY trace_id, metric
),
t AS (
  -- The one record a trace's outcomes count for: its earliest (a trace
  -- can hold several requests).
  SELECT trace_id, experiment_id, variant, bucket, utc_day,
    ROW_NUMBER() OVER (PARTITION BY trace_id
                       ORDER BY start_unix_ms, experiment_id, variant, bucket) AS nth
  FROM r
  WHERE trace_id IN (SELECT trace_id FROM o)
),
cells AS (
  SELECT experiment_id, variant, bucket, utc_day, '' AS outcome_metric, 0 AS value_micro,
    unit_id, unit_first_day, outcome, schema_pass, cost_nano_usd, tokens_in, tokens_out,
    latency_ms
  FROM ru
  UNION ALL
  SELECT t.experiment_id, t.variant, t.bucket, t.utc_day, o.metric, o.value_micro,
    NULL, NULL, NULL, NULL, 0, 0, 0, NULL
  FROM t JOIN o ON o.trace_id = t.trace_id
  WHERE t.nth = 1
)
-- The result
SELECT
  experiment_id AS experiment_id,
  variant AS variant,
  bucket AS bucket,
  utc_day AS utc_day,
  outcome_metric AS outcome_metric,
  SUM(CASE WHEN outcome_metric = '' THEN 1 ELSE 0 END) AS requests,
  SUM(CASE WHEN outcome = 'success' THEN 1 ELSE 0 END) AS successes,
  SUM(CASE WHEN outcome = 'error' THEN 1 ELSE 0 END) AS errors,
  SUM(CASE WHEN outcome = 'refusal' THEN 1 ELSE 0 END) AS refusals,
  SUM(CASE WHEN outcome = 'blocked' THEN 1 ELSE 0 END) AS blocked,
  SUM(CASE WHEN outcome = 'invalid' THEN 1 ELSE 0 END) AS invalid,
  SUM(CASE WHEN outcome = 'fallback' THEN 1 ELSE 0 END) AS fallbacks,
  SUM(CASE WHEN schema_pass IS NOT NULL THEN 1 ELSE 0 END) AS schema_checked,
  SUM(CASE WHEN schema_pass THEN 1 ELSE 0 END) AS schema_passed,
  SUM(cost_nano_usd) AS cost_nano_usd,
  SUM(tokens_in) AS tokens_in,
  SUM(tokens_out) AS tokens_out,
  SUM(CASE WHEN outcome_metric = '' THEN latency_ms ELSE 0 END) AS latency_ms,
  COUNT(DISTINCT CASE WHEN utc_day = unit_first_day THEN unit_id END) AS new_units,
  SUM(value_micro) AS outcome_micro,
  -- Cumulative latency histogram: requests faster than each bound (ms).
  SUM(CASE WHEN latency_ms < 1 THEN 1 ELSE 0 END) AS latency_lt_1,
  SUM(CASE WHEN latency_ms < 2 THEN 1 ELSE 0 END) AS latency_lt_2,
  SUM(CASE WHEN latency_ms < 3 THEN 1 ELSE 0 END) AS latency_lt_3,
  SUM(CASE WHEN latency_ms < 4 THEN 1 ELSE 0 END) AS latency_lt_4,
  SUM(CASE WHEN latency_ms < 5 THEN 1 ELSE 0 END) AS latency_lt_5,
  SUM(CASE WHEN latency_ms < 6 THEN 1 ELSE 0 END) AS latency_lt_6,
  SUM(CASE WHEN latency_ms < 7 THEN 1 ELSE 0 END) AS latency_lt_7,
  SUM(CASE WHEN latency_ms < 8 THEN 1 ELSE 0 END) AS latency_lt_8,
  SUM(CASE WHEN latency_ms < 9 THEN 1 ELSE 0 END) AS latency_lt_9,
  SUM(CASE WHEN latency_ms < 10 THEN 1 ELSE 0 END) AS latency_lt_10,
  SUM(CASE WHEN latency_ms < 11 THEN 1 ELSE 0 END) AS latency_lt_11,
  SUM(CASE WHEN latency_ms < 13 THEN 1 ELSE 0 END) AS latency_lt_13,
  SUM(CASE WHEN latency_ms < 14 THEN 1 ELSE 0 END) AS latency_lt_14,
  SUM(CASE WHEN latency_ms < 16 THEN 1 ELSE 0 END) AS latency_lt_16,
  SUM(CASE WHEN latency_ms < 18 THEN 1 ELSE 0 END) AS latency_lt_18,
  SUM(CASE WHEN latency_ms < 20 THEN 1 ELSE 0 END) AS latency_lt_20,
  SUM(CASE WHEN latency_ms < 23 THEN 1 ELSE 0 END) AS latency_lt_23,
  SUM(CASE WHEN latency_ms < 25 THEN 1 ELSE 0 END) AS latency_lt_25,
  SUM(CASE WHEN latency_ms < 29 THEN 1 ELSE 0 END) AS latency_lt_29,
  SUM(CASE WHEN latency_ms < 32 THEN 1 ELSE 0 END) AS latency_lt_32,
  SUM(CASE WHEN latency_ms < 36 THEN 1 ELSE 0 END) AS latency_lt_36,
  SUM(CASE WHEN latency_ms < 40 THEN 1 ELSE 0 END) AS latency_lt_40,
  SUM(CASE WHEN latency_ms < 45 THEN 1 ELSE 0 END) AS latency_lt_45,
  SUM(CASE WHEN latency_ms < 51 THEN 1 ELSE 0 END) AS latency_lt_51,
  SUM(CASE WHEN latency_ms < 57 THEN 1 ELSE 0 END) AS latency_lt_57,
  SUM(CASE WHEN latency_ms < 64 THEN 1 ELSE 0 END) AS latency_lt_64,
  SUM(CASE WHEN latency_ms < 72 THEN 1 ELSE 0 END) AS latency_lt_72,
  SUM(CASE WHEN latency_ms < 81 THEN 1 ELSE 0 END) AS latency_lt_81,
  SUM(CASE WHEN latency_ms < 91 THEN 1 ELSE 0 END) AS latency_lt_91,
  SUM(CASE WHEN latency_ms < 102 THEN 1 ELSE 0 END) AS latency_lt_102,
  SUM(CASE WHEN latency_ms < 114 THEN 1 ELSE 0 END) AS latency_lt_114,
  SUM(CASE WHEN latency_ms < 128 THEN 1 ELSE 0 END) AS latency_lt_128,
  SUM(CASE WHEN latency_ms < 144 THEN 1 ELSE 0 END) AS latency_lt_144,
  SUM(CASE WHEN latency_ms < 161 THEN 1 ELSE 0 END) AS latency_lt_161,
  SUM(CASE WHEN latency_ms < 181 THEN 1 ELSE 0 END) AS latency_lt_181,
  SUM(CASE WHEN latency_ms < 203 THEN 1 ELSE 0 END) AS latency_lt_203,
  SUM(CASE WHEN latency_ms < 228 THEN 1 ELSE 0 END) AS latency_lt_228,
  SUM(CASE WHEN latency_ms < 256 THEN 1 ELSE 0 END) AS latency_lt_256,
  SUM(CASE WHEN latency_ms < 287 THEN 1 ELSE 0 END) AS latency_lt_287,
  SUM(CASE WHEN latency_ms < 323 THEN 1 ELSE 0 END) AS latency_lt_323,
  SUM(CASE WHEN latency_ms < 362 THEN 1 ELSE 0 END) AS latency_lt_362,
  SUM(CASE WHEN latency_ms < 406 THEN 1 ELSE 0 END) AS latency_lt_406,
  SUM(CASE WHEN latency_ms < 456 THEN 1 ELSE 0 END) AS latency_lt_456,
  SUM(CASE WHEN latency_ms < 512 THEN 1 ELSE 0 END) AS latency_lt_512,
  SUM(CASE WHEN latency_ms < 575 THEN 1 ELSE 0 END) AS latency_lt_575,
  SUM(CASE WHEN latency_ms < 645 THEN 1 ELSE 0 END) AS latency_lt_645,
  SUM(CASE WHEN latency_ms < 724 THEN 1 ELSE 0 END) AS latency_lt_724,
  SUM(CASE WHEN latency_ms < 813 THEN 1 ELSE 0 END) AS latency_lt_813,
  SUM(CASE WHEN latency_ms < 912 THEN 1 ELSE 0 END) AS latency_lt_912,
  SUM(CASE WHEN latency_ms < 1024 THEN 1 ELSE 0 END) AS latency_lt_1024,
  SUM(CASE WHEN latency_ms < 1149 THEN 1 ELSE 0 END) AS latency_lt_1149,
  SUM(CASE WHEN latency_ms < 1290 THEN 1 ELSE 0 END) AS latency_lt_1290,
  SUM(CASE WHEN latency_ms < 1448 THEN 1 ELSE 0 END) AS latency_lt_1448,
  SUM(CASE WHEN latency_ms < 1625 THEN 1 ELSE 0 END) AS latency_lt_1625,
  SUM(CASE WHEN latency_ms < 1825 THEN 1 ELSE 0 END) AS latency_lt_1825,
  SUM(CASE WHEN latency_ms < 2048 THEN 1 ELSE 0 END) AS latency_lt_2048,
  SUM(CASE WHEN latency_ms < 2299 THEN 1 ELSE 0 END) AS latency_lt_2299,
  SUM(CASE WHEN latency_ms < 2580 THEN 1 ELSE 0 END) AS latency_lt_2580,
  SUM(CASE WHEN latency_ms < 2896 THEN 1 ELSE 0 END) AS latency_lt_2896,
  SUM(CASE WHEN latency_ms < 3251 THEN 1 ELSE 0 END) AS latency_lt_3251,
  SUM(CASE WHEN latency_ms < 3649 THEN 1 ELSE 0 END) AS latency_lt_3649,
  SUM(CASE WHEN latency_ms < 4096 THEN 1 ELSE 0 END) AS latency_lt_4096,
  SUM(CASE WHEN latency_ms < 4598 THEN 1 ELSE 0 END) AS latency_lt_4598,
  SUM(CASE WHEN latency_ms < 5161 THEN 1 ELSE 0 END) AS latency_lt_5161,
  SUM(CASE WHEN latency_ms < 5793 THEN 1 ELSE 0 END) AS latency_lt_5793,
  SUM(CASE WHEN latency_ms < 6502 THEN 1 ELSE 0 END) AS latency_lt_6502,
  SUM(CASE WHEN latency_ms < 7298 THEN 1 ELSE 0 END) AS latency_lt_7298,
  SUM(CASE WHEN latency_ms < 8192 THEN 1 ELSE 0 END) AS latency_lt_8192,
  SUM(CASE WHEN latency_ms < 9195 THEN 1 ELSE 0 END) AS latency_lt_9195,
  SUM(CASE WHEN latency_ms < 10321 THEN 1 ELSE 0 END) AS latency_lt_10321,
  SUM(CASE WHEN latency_ms < 11585 THEN 1 ELSE 0 END) AS latency_lt_11585,
  SUM(CASE WHEN latency_ms < 13004 THEN 1 ELSE 0 END) AS latency_lt_13004,
  SUM(CASE WHEN latency_ms < 14596 THEN 1 ELSE 0 END) AS latency_lt_14596,
  SUM(CASE WHEN latency_ms < 16384 THEN 1 ELSE 0 END) AS latency_lt_16384,
  SUM(CASE WHEN latency_ms < 18390 THEN 1 ELSE 0 END) AS latency_lt_18390,
  SUM(CASE WHEN latency_ms < 20643 THEN 1 ELSE 0 END) AS latency_lt_20643,
  SUM(CASE WHEN latency_ms < 23170 THEN 1 ELSE 0 END) AS latency_lt_23170,
  SUM(CASE WHEN latency_ms < 26008 THEN 1 ELSE 0 END) AS latency_lt_26008,
  SUM(CASE WHEN latency_ms < 29193 THEN 1 ELSE 0 END) AS latency_lt_29193,
  SUM(CASE WHEN latency_ms < 32768 THEN 1 ELSE 0 END) AS latency_lt_32768,
  SUM(CASE WHEN latency_ms < 36781 THEN 1 ELSE 0 END) AS latency_lt_36781,
  SUM(CASE WHEN latency_ms < 41285 THEN 1 ELSE 0 END) AS latency_lt_41285,
  SUM(CASE WHEN latency_ms < 46341 THEN 1 ELSE 0 END) AS latency_lt_46341,
  SUM(CASE WHEN latency_ms < 52016 THEN 1 ELSE 0 END) AS latency_lt_52016,
  SUM(CASE WHEN latency_ms < 58386 THEN 1 ELSE 0 END) AS latency_lt_58386,
  SUM(CASE WHEN latency_ms < 65536 THEN 1 ELSE 0 END) AS latency_lt_65536,
  SUM(CASE WHEN latency_ms < 73562 THEN 1 ELSE 0 END) AS latency_lt_73562,
  SUM(CASE WHEN latency_ms < 82570 THEN 1 ELSE 0 END) AS latency_lt_82570,
  SUM(CASE WHEN latency_ms < 92682 THEN 1 ELSE 0 END) AS latency_lt_92682,
  SUM(CASE WHEN latency_ms < 104032 THEN 1 ELSE 0 END) AS latency_lt_104032,
  SUM(CASE WHEN latency_ms < 116772 THEN 1 ELSE 0 END) AS latency_lt_116772,
  SUM(CASE WHEN latency_ms < 131072 THEN 1 ELSE 0 END) AS latency_lt_131072,
  SUM(CASE WHEN latency_ms < 147123 THEN 1 ELSE 0 END) AS latency_lt_147123,
  SUM(CASE WHEN latency_ms < 165140 THEN 1 ELSE 0 END) AS latency_lt_165140,
  SUM(CASE WHEN latency_ms < 185364 THEN 1 ELSE 0 END) AS latency_lt_185364,
  SUM(CASE WHEN latency_ms < 208064 THEN 1 ELSE 0 END) AS latency_lt_208064,
  SUM(CASE WHEN latency_ms < 233544 THEN 1 ELSE 0 END) AS latency_lt_233544,
  SUM(CASE WHEN latency_ms < 262144 THEN 1 ELSE 0 END) AS latency_lt_262144,
  SUM(CASE WHEN latency_ms < 294247 THEN 1 ELSE 0 END) AS latency_lt_294247,
  SUM(CASE WHEN latency_ms < 330281 THEN 1 ELSE 0 END) AS latency_lt_330281,
  SUM(CASE WHEN latency_ms < 370728 THEN 1 ELSE 0 END) AS latency_lt_370728,
  SUM(CASE WHEN latency_ms < 416128 THEN 1 ELSE 0 END) AS latency_lt_416128,
  SUM(CASE WHEN latency_ms < 467088 THEN 1 ELSE 0 END) AS latency_lt_467088,
  SUM(CASE WHEN latency_ms < 524288 THEN 1 ELSE 0 END) AS latency_lt_524288,
  SUM(CASE WHEN latency_ms < 588493 THEN 1 ELSE 0 END) AS latency_lt_588493,
  SUM(CASE WHEN latency_ms < 660561 THEN 1 ELSE 0 END) AS latency_lt_660561,
  SUM(CASE WHEN latency_ms < 741455 THEN 1 ELSE 0 END) AS latency_lt_741455,
  SUM(CASE WHEN latency_ms < 832255 THEN 1 ELSE 0 END) AS latency_lt_832255,
  SUM(CASE WHEN latency_ms < 934175 THEN 1 ELSE 0 END) AS latency_lt_934175,
  SUM(CASE WHEN latency_ms < 1048576 THEN 1 ELSE 0 END) AS latency_lt_1048576
FROM cells
GROUP BY experiment_id, variant, bucket, utc_day, outcome_metric
ORDER BY experiment_id, variant, bucket, utc_day, outcome_metric
