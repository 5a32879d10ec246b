"""Synced activities and daily health, sync cursors and jobs, per-user leases (SQL for SQLite and PostgreSQL)."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return """
        CREATE TABLE IF NOT EXISTS "activity" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(64) NOT NULL,
    "garmin_activity_id" BIGINT NOT NULL,
    "activity_type" VARCHAR(64),
    "name" VARCHAR(255),
    "start_time_utc" TIMESTAMPTZ NOT NULL,
    "start_time_local" VARCHAR(19),
    "duration_seconds" DOUBLE PRECISION,
    "distance_meters" DOUBLE PRECISION,
    "calories" DOUBLE PRECISION,
    "average_hr" DOUBLE PRECISION,
    "max_hr" DOUBLE PRECISION,
    "elevation_gain" DOUBLE PRECISION,
    "raw_json" JSONB NOT NULL,
    "first_seen" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL,
    CONSTRAINT "uid_activity_user_id_9d1404" UNIQUE ("user_id", "garmin_activity_id")
);
CREATE INDEX IF NOT EXISTS "idx_activity_user_id_80149a" ON "activity" ("user_id", "start_time_utc");
        CREATE TABLE IF NOT EXISTS "daily_health" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(64) NOT NULL,
    "calendar_date" DATE NOT NULL,
    "steps" INT,
    "resting_hr" INT,
    "sleep_seconds" INT,
    "sleep_score" INT,
    "average_stress" INT,
    "body_battery_high" INT,
    "body_battery_low" INT,
    "hrv_last_night" INT,
    "raw_json" JSONB NOT NULL,
    "first_seen" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL,
    CONSTRAINT "uid_daily_healt_user_id_fdb74d" UNIQUE ("user_id", "calendar_date")
);
        CREATE TABLE IF NOT EXISTS "sync_cursor" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(64) NOT NULL,
    "kind" VARCHAR(16) NOT NULL,
    "last_synced_date" DATE,
    "last_success_at" TIMESTAMPTZ,
    "next_sync_at" TIMESTAMPTZ,
    "backoff_until" TIMESTAMPTZ,
    "consecutive_failures" INT NOT NULL,
    "last_error" VARCHAR(200),
    CONSTRAINT "uid_sync_cursor_user_id_ba7e52" UNIQUE ("user_id", "kind")
);
CREATE INDEX IF NOT EXISTS "idx_sync_cursor_next_sy_2bce27" ON "sync_cursor" ("next_sync_at");
        CREATE TABLE IF NOT EXISTS "sync_job" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(64) NOT NULL,
    "kind" VARCHAR(16) NOT NULL,
    "trigger" VARCHAR(16) NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "started_at" TIMESTAMPTZ,
    "finished_at" TIMESTAMPTZ,
    "items_fetched" INT NOT NULL,
    "items_upserted" INT NOT NULL,
    "items_skipped" INT NOT NULL,
    "error" VARCHAR(200),
    "worker" VARCHAR(128),
    "lease_token" BIGINT
);
CREATE INDEX IF NOT EXISTS "idx_sync_job_user_id_b2b3cb" ON "sync_job" ("user_id", "id");
CREATE INDEX IF NOT EXISTS "idx_sync_job_status_a4440d" ON "sync_job" ("status");
        CREATE TABLE IF NOT EXISTS "user_lease" (
    "user_id" VARCHAR(64) NOT NULL PRIMARY KEY,
    "owner" VARCHAR(128),
    "token" BIGINT NOT NULL,
    "expires_at" TIMESTAMPTZ,
    "purpose" VARCHAR(32)
);"""
    return """
        CREATE TABLE IF NOT EXISTS "activity" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "user_id" VARCHAR(64) NOT NULL,
    "garmin_activity_id" BIGINT NOT NULL,
    "activity_type" VARCHAR(64),
    "name" VARCHAR(255),
    "start_time_utc" TIMESTAMP NOT NULL,
    "start_time_local" VARCHAR(19),
    "duration_seconds" REAL,
    "distance_meters" REAL,
    "calories" REAL,
    "average_hr" REAL,
    "max_hr" REAL,
    "elevation_gain" REAL,
    "raw_json" JSON NOT NULL,
    "first_seen" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL,
    CONSTRAINT "uid_activity_user_id_9d1404" UNIQUE ("user_id", "garmin_activity_id")
);
CREATE INDEX IF NOT EXISTS "idx_activity_user_id_80149a" ON "activity" ("user_id", "start_time_utc");
        CREATE TABLE IF NOT EXISTS "daily_health" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "user_id" VARCHAR(64) NOT NULL,
    "calendar_date" DATE NOT NULL,
    "steps" INT,
    "resting_hr" INT,
    "sleep_seconds" INT,
    "sleep_score" INT,
    "average_stress" INT,
    "body_battery_high" INT,
    "body_battery_low" INT,
    "hrv_last_night" INT,
    "raw_json" JSON NOT NULL,
    "first_seen" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL,
    CONSTRAINT "uid_daily_healt_user_id_fdb74d" UNIQUE ("user_id", "calendar_date")
);
        CREATE TABLE IF NOT EXISTS "sync_cursor" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "user_id" VARCHAR(64) NOT NULL,
    "kind" VARCHAR(16) NOT NULL,
    "last_synced_date" DATE,
    "last_success_at" TIMESTAMP,
    "next_sync_at" TIMESTAMP,
    "backoff_until" TIMESTAMP,
    "consecutive_failures" INT NOT NULL,
    "last_error" VARCHAR(200),
    CONSTRAINT "uid_sync_cursor_user_id_ba7e52" UNIQUE ("user_id", "kind")
);
CREATE INDEX IF NOT EXISTS "idx_sync_cursor_next_sy_2bce27" ON "sync_cursor" ("next_sync_at");
        CREATE TABLE IF NOT EXISTS "sync_job" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "user_id" VARCHAR(64) NOT NULL,
    "kind" VARCHAR(16) NOT NULL,
    "trigger" VARCHAR(16) NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "started_at" TIMESTAMP,
    "finished_at" TIMESTAMP,
    "items_fetched" INT NOT NULL,
    "items_upserted" INT NOT NULL,
    "items_skipped" INT NOT NULL,
    "error" VARCHAR(200),
    "worker" VARCHAR(128),
    "lease_token" BIGINT
);
CREATE INDEX IF NOT EXISTS "idx_sync_job_user_id_b2b3cb" ON "sync_job" ("user_id", "id");
CREATE INDEX IF NOT EXISTS "idx_sync_job_status_a4440d" ON "sync_job" ("status");
        CREATE TABLE IF NOT EXISTS "user_lease" (
    "user_id" VARCHAR(64) NOT NULL PRIMARY KEY,
    "owner" VARCHAR(128),
    "token" BIGINT NOT NULL,
    "expires_at" TIMESTAMP,
    "purpose" VARCHAR(32)
);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return """
        DROP TABLE IF EXISTS "sync_job";
        DROP TABLE IF EXISTS "activity";
        DROP TABLE IF EXISTS "daily_health";
        DROP TABLE IF EXISTS "user_lease";
        DROP TABLE IF EXISTS "sync_cursor";"""
    return """
        DROP TABLE IF EXISTS "sync_cursor";
        DROP TABLE IF EXISTS "sync_job";
        DROP TABLE IF EXISTS "activity";
        DROP TABLE IF EXISTS "daily_health";
        DROP TABLE IF EXISTS "user_lease";"""


MODELS_STATE = (
    "eJztXW1T27gW/iuafLkwQzsQKFD6KUBasjcEhoRuZ5sdI2wl0eJIriwDmb397/dIthO/Jn"
    "EoYFJ/gUQ6R5afo5ej50jKv7Uxt4jtvm+Ykt5TOakdoX9rDI8JfEjlbaEadpxZjkqQ+NbW"
    "wjgqdetKAQmQPsC2SyDJIq4pqCMpZ0r6ghH0BYsxZShURK43HmMx+YQ2PJcIg1pbaKhFjF"
    "AE0jYRdZEcEcSw9AS20R2ZvFfPtLgJD6Vs+DzFe4z+8Igh+ZBAtoCHfP9eCwpS+emian//"
    "DemUWeSRuCl5V2IhDUnHxPCk6cs6d8aAEtuKGcEX1+mGnDg67ZgOW0x+1rLq1W8Nk9vemM"
    "3knYkccTZVoEzqShJGBJZEPUEKT9mFebYdmDA0lf+qMxH/FSI6Fhlgz1bWVdp+BWZpNcPo"
    "XPSMbrNnGLWU5UONiLWCJJMz1Wqgqq4GYKiq8O5jvb67e1Df3t0//LB3cPDhcPsQZHV901"
    "kHP/3KzNDyi9KYtb60Oj1VIQ5N02+zKuGn1sES+1raUjP0IxaLm+BkhEW2ASIqCSvA6yWt"
    "EGI+zwxhwswOs071EoYY40fDJmwoR/B1f28Oxl8bVydnjauN/b3NONCdIKeusxTkM4gzek"
    "6hBp+tv7gDvAXoX7APzAwyRVKDV6DlpxRXav/BIFMaGzxz89f/C4Acyq8ftvUPH5YAF6Ry"
    "0dV5cXgT82wK6FMAS+Vmg53WTsBuBervww9vcJSZA3qvdd7s9hrnl6r4sev+sDVmjV5T5d"
    "R16iSRurGfsM+0EPRnq3eG1Ff010WnqeHkrhwK/cSZXO+vmqoT9iQ3GH8wsBXFJEwOk/LM"
    "bXMT20V6Vpbu+vWynY9LdLKdj7l9TGXFu5gFjrKqk+ESeLLlpjH/bHOcM3tnKSdAHyjttw"
    "f7HJhPL66P2010edU8aXVbF514P9KZeo3ww6ZSQ3DVbLSTqFNor8wkxphIIgqCntatMF8C"
    "cxgUuKCkGNhRpQrlJVDG94DFkBgjUQjnuFqF9BJIq4mhIMozlQrhJRAmNrn357chPLIQ0m"
    "nVCvElEBf4wfjH5RlY/9G96GRDHdVJOvjUlOh/yIYZc71ce4VGzKsPXbyN88a3pPd30r44"
    "TrrrqoDjBPgDKlwJrhzJgH/+SiuuuYarrJog2Lpg9iTokW9k1RUMHnMXXZ6j7GIZ/mhUxO"
    "pxzcrqZbF6xlpb115FKQZ3EaZcJdxi8+4BC8tI5fA6z5NNZ43r42QKZuDQWQG4qppBROoU"
    "U3tyRrCtV7SpgFU0e2tezMpSgsZoJrlU3AocesIsLJCFJ4gPEEaK8v+Pi/yCwkDTFnqg8I"
    "1gE5K4J0wCIjDTIDVwZoesflnJi6JV4YMM1bVSgaoqFlXFoko6nD4zGR/vF5mTWe4iP644"
    "by57g8DPc9phLkqR7sTJIElyx4mp/EpRu5Ktb4LBor6zd7B3uLu/Nx0jpinzhoZ0OA5mbA"
    "nPy1yo5yIaV6pgTcPq2oQ4+ZR1fltN6lXg5oJrcpExii6CNtSqgM2IzQckJzyDuEWabVqx"
    "gjcN7y23JsYtlpIIWBfQ4agAwpm6FcgLQLZhcbkixoFqBXEa4pG4N2zsSoNBO8xgZXIBTi"
    "tW8Ga4ZBXHXHHMJTTFG2UbK475d7R6yTlm//hAw5MjwiQ1dSS2K7GOO6YY53zhrXn8c7h1"
    "OaYHLnqouJCObjJTTBxoqeoogyKIwbeHLISZhc4/N5AuCg24QJwRTSaniecVyuizPruBBY"
    "WSu0FDwR9cyEQEkiboQVBJPvn/hItMPnawIO+guHcukUqOSuRyhJELHhwRSBDoRq5ETOn3"
    "GYe/WtkFEUaUhM2HlL1HN0HVFMmGb3QFb8YD7AN2g0bctqB4e4JM6oyIkORRolvugZjkUO"
    "GADL1BGzAFqMLEPTXJe/32/GYzjzh/Cjn+uzDjT/Ssys15vy7Az8x4R7tUGuUedKEcriah"
    "tw4bZedNnM1vvfme7HTebF90voTiSfc2tTddehkkjmrbTeaNNfIt5u/VzCDNQ+2XC+3Uzl"
    "vdbqvzpVbMAqHaEQo+9NnXRrt1eoT0vz5rfrtsXTXhe/AhOUkttbF5f5mNzUlnJrKxeT/j"
    "7AAgbIB7lbnWm7uTPK64Dr0jcVhje3uZwxrb2/mHNVReYj8iTOYOYZaqRgruY85tglnOts"
    "S4ZgLvW1B9ri4xTXnZAen44qIdG5COW8kR5/r8uAktXhtgtmUuzWZMXagi439MaR2a90sP"
    "/gpA8uhQWCytsKhNa/+Che0bski517Fp+kLZS9HWY0cWidok1V7uVOt2qRcMkR0bnDFirs"
    "YMJXWrLlTmLqTDEvfYpprOK2rrtHZl7VJbW1E+YD9uW/yBGR6TNOMw5wKb55RRWb7Mlg94"
    "xQKzZESjmiBTEySsQlecHmOaVeCkLL2oCpf9jlYvebisO2HmiSdcLmoZ8bFI7ta8gJgLco"
    "Y5E1wYAPtzRASZnZNQ+urghIpU3UH7UsErZrk6VPQwIjr0RF1keaCjTlWmo2FPLVCHxhh5"
    "lIZ+FyxvUOe63UZjgpmLHAzlWmiDcaR90TDYtnmkLx1zzRGxPJsIRIeMQ7vQqT4efab9Fz"
    "8m5kfEEEh4Y5CicqlTH+oFMm4li9a24EVkVXxrDeJbrz0eP3OES7f6THwXx1hC3TIDXWuc"
    "9FpfW71Ws3sU3nZIidtnZ81Gu3d2hGbn214/pKKX4WqsAQ+j6BmbLN0nHrN5O8u4jFM2Ph"
    "6eacIcsoKjl6FeLYzL49ylffrYPF3Q2EndytJltrRyyflgsBrrlVKubF1mW6tXI6YH0zYx"
    "Bpjansi6XyrX0c5Tr4iwJBGm5zsiBM84R5nvbce11iHQ/Uz7OErEQ/zBb2s5JITK2lrIQP"
    "wTSC11HYTwGNrgArl31HFgcQ/fN2OUAXzWNML8bbhPK2rxvtUYE6BuJ99C38M9ZNXt49WN"
    "DxU7ULEDr80OwNOHQ5IzPy+2R0S91Cbpnpw1T6/bar9ryPhafXbe6Fw32kcIpjbPv3z49Q"
    "3yBncoXzY7pyvsUA7UjlDwoc+urjsdnRJ86LPu9clJswv9KPjQZ58bLW1G/3+fNa57Z8Z0"
    "M3P0G5QHqw2j3Tpv9VRe9BuU/N/W5aVKDj6Uw/pV6Dgf+rcZRFwmdKyvQV/J6nHNinYoM+"
    "0woIy6o5XMnFCt7FxmO1NJxq4xIFI5GkUCuEm9ilBKEko+RJ7jqqOmxbGNKlbgZoMbECGF"
    "sY3oVdAmoS3MgVb0Z7FjbA9c3OWtYrMRnmmsH8Q79cNlFib1w/yVicpLkPkEu4ruvMu6BW"
    "YeQZlQXKPbjV6AqywJx38NE2db2bGWwfLPMrfm8fyaJ7WncguZ/hPBXfedII5NTYwcIt6p"
    "EtDYkx62EXk0bU9t5DtC/AHazhbSh/Mmep8gRgPCTLAg0s0uTf3/wrLV9sMTG4PbbaHbiY"
    "4RYMnH1ETqvkqq3gaKvL5UvinaGAhCEBd+gcTa/IRudDHJOz36zFRl+rd2+GMVkiMskQ3e"
    "KqLSRRpJZGKGbglUxYaaObAYRAPBx/7vqZIHfUHH0vGK3JBEGUjxNbwSIj8KoVtdEbinCt"
    "VkttRktsI09rQJrIzu7Qv/yOnqR6+rY9dvh/1wPAFFFvp91YjK+g1fu/UlRq/deu7gpbJK"
    "4wY2iKBm5g+ABDlzHUA8k1nk/OWDXV0XVq7jFLlnR/P7e/7h0VIFjVflN57jN5VVpyqAcC"
    "C+hujuLMUe7cxhj3bS7BE8URKW4Zbk3y0cUamuFi54tfCrTmY//w/rhbic"
)
