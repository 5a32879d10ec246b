"""Webhook outbox: events, deliveries, per-user event sequence, sync health (SQL for SQLite and PostgreSQL)."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return """
        CREATE TABLE IF NOT EXISTS "webhook_delivery" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "event_id" BIGINT NOT NULL,
    "endpoint" VARCHAR(64) NOT NULL,
    "user_id" VARCHAR(64) NOT NULL,
    "sequence" BIGINT NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "attempts" INT NOT NULL,
    "next_attempt_at" TIMESTAMPTZ NOT NULL,
    "claimed_by" VARCHAR(128),
    "claim_expires_at" TIMESTAMPTZ,
    "last_status" INT,
    "last_error" VARCHAR(200),
    "created_at" TIMESTAMPTZ NOT NULL,
    "finished_at" TIMESTAMPTZ,
    CONSTRAINT "uid_webhook_del_event_i_5d2dde" UNIQUE ("event_id", "endpoint")
);
CREATE INDEX IF NOT EXISTS "idx_webhook_del_status_5b6f00" ON "webhook_delivery" ("status", "next_attempt_at");
CREATE INDEX IF NOT EXISTS "idx_webhook_del_endpoin_0efdda" ON "webhook_delivery" ("endpoint", "user_id", "sequence");
        CREATE TABLE IF NOT EXISTS "webhook_event" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "message_id" VARCHAR(40) NOT NULL UNIQUE,
    "user_id" VARCHAR(64) NOT NULL,
    "type" VARCHAR(40) NOT NULL,
    "sequence" BIGINT NOT NULL,
    "body" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_webhook_eve_user_id_9fefd8" ON "webhook_event" ("user_id", "sequence");
        CREATE TABLE IF NOT EXISTS "webhook_sync_health" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(64) NOT NULL,
    "kind" VARCHAR(16) NOT NULL,
    "failures" INT NOT NULL,
    "failing" BOOL NOT NULL,
    CONSTRAINT "uid_webhook_syn_user_id_2aefca" UNIQUE ("user_id", "kind")
);
        CREATE TABLE IF NOT EXISTS "webhook_user_sequence" (
    "user_id" VARCHAR(64) NOT NULL PRIMARY KEY,
    "sequence" BIGINT NOT NULL
);"""
    return """
        CREATE TABLE IF NOT EXISTS "webhook_delivery" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "event_id" BIGINT NOT NULL,
    "endpoint" VARCHAR(64) NOT NULL,
    "user_id" VARCHAR(64) NOT NULL,
    "sequence" BIGINT NOT NULL,
    "status" VARCHAR(16) NOT NULL,
    "attempts" INT NOT NULL,
    "next_attempt_at" TIMESTAMP NOT NULL,
    "claimed_by" VARCHAR(128),
    "claim_expires_at" TIMESTAMP,
    "last_status" INT,
    "last_error" VARCHAR(200),
    "created_at" TIMESTAMP NOT NULL,
    "finished_at" TIMESTAMP,
    CONSTRAINT "uid_webhook_del_event_i_5d2dde" UNIQUE ("event_id", "endpoint")
);
CREATE INDEX IF NOT EXISTS "idx_webhook_del_status_5b6f00" ON "webhook_delivery" ("status", "next_attempt_at");
CREATE INDEX IF NOT EXISTS "idx_webhook_del_endpoin_0efdda" ON "webhook_delivery" ("endpoint", "user_id", "sequence");
        CREATE TABLE IF NOT EXISTS "webhook_event" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "message_id" VARCHAR(40) NOT NULL UNIQUE,
    "user_id" VARCHAR(64) NOT NULL,
    "type" VARCHAR(40) NOT NULL,
    "sequence" BIGINT NOT NULL,
    "body" TEXT NOT NULL,
    "created_at" TIMESTAMP NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_webhook_eve_user_id_9fefd8" ON "webhook_event" ("user_id", "sequence");
        CREATE TABLE IF NOT EXISTS "webhook_sync_health" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "user_id" VARCHAR(64) NOT NULL,
    "kind" VARCHAR(16) NOT NULL,
    "failures" INT NOT NULL,
    "failing" INT NOT NULL,
    CONSTRAINT "uid_webhook_syn_user_id_2aefca" UNIQUE ("user_id", "kind")
);
        CREATE TABLE IF NOT EXISTS "webhook_user_sequence" (
    "user_id" VARCHAR(64) NOT NULL PRIMARY KEY,
    "sequence" BIGINT NOT NULL
);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return """
        DROP TABLE IF EXISTS "webhook_event";
        DROP TABLE IF EXISTS "webhook_user_sequence";
        DROP TABLE IF EXISTS "webhook_delivery";
        DROP TABLE IF EXISTS "webhook_sync_health";"""
    return """
        DROP TABLE IF EXISTS "webhook_sync_health";
        DROP TABLE IF EXISTS "webhook_event";
        DROP TABLE IF EXISTS "webhook_user_sequence";
        DROP TABLE IF EXISTS "webhook_delivery";"""


MODELS_STATE = (
    "eJztXetz2rgW/1c0fLnJTJppadJH+okktOHePDoN6e7ssmOELcAbI7OWXMLs7v9+z5Ft8B"
    "Ns2iSG6ktLpHNk+3f0OC9JfzcmrsUccdgypf3NlvPGCfm7wemEwY9M3QFp0Ol0WYMFkg4c"
    "RUzjVAMhPSiA8iF1BIMiiwnTs6fSdjlS33BGPlFvYnMSMRLhTybUm38ge75gnmFbB2SkSI"
    "yIBMr2iS2IHDPCqfQ96pB7Nj/EZ1quCQ+1+ehxmve5/ZfPDOmOGFR78JDff2+EDWF9tqnG"
    "H39Auc0t9sBEhl5I6klD2hNm+NIMaKf3xtBmjpUQQkCuyg05n6qyU3vU4fKjosVPHxim6/"
    "gTvqSfzuXY5QsGm0v1kowzj0qGT5Cej3LhvuOEIoxEFXzqkiT4hBiPxYbUd1C6yB28wLKs"
    "YRjXN13jtt01jEZG8hFHTFphkely7DXwqkIBMMJXePG+2Xz9+m3z5es3746P3r49fvfyHd"
    "Cq981Wvf03eJklWkFTCrPOp851F1/Iha4Z9Fks+FfxUEkDLiWpJfoxiSVFcDamXr4AYiwp"
    "KcDnpaUQYb5KDFHBUg7LQfUUgpjQB8NhfCTH8OeboxUYf219Obtofdl7c7SfBPo6rGmqKo"
    "R8CXHOyKnU4fP51w+AbYD+CcfAUiALJBV4FXp+hnGj/h9OMrWRwSN3f/V/BZAj+t3Dtnl8"
    "XAJcoCpEV9Ul4U2tsxmgzwEsrM0HO8udgt0K2Q+jH1s4y6wAvdu5at92W1efsfmJEH85Cr"
    "NWt401TVU6T5XuvUnJZ9EI+aXTvSD4J/nt5rqt4HSFHHnqiUu67m8NfCfqS9fg7sygVhyT"
    "qDgqKhK345rUqTKy8nh3b5S9el9ikL16XzjGsCo5xCxQlPGdDMHgyZbIYv7RcWnB6p3HnA"
    "J9iNzbB/sKmM9v7k4v2+Tzl/ZZ57Zzc50cR6pS2Qh/ObZUEHxpty7TqNvQX7nJjAmTzKsI"
    "epZXY14Cc5gUXM9m1cCOM2mUS6BMvwEWI2aMvUo4J9k00iWQxoWhIspLFo1wCYSZw74F69"
    "sIHlkJ6SyrRrwE4h6dGX8KNwfr/97eXOdDHedJK/i2Kck/xIEVc7dUe0QjodVHKt7eVevX"
    "tPZ3dnlzmlbXsYHTFPhD2xMSVDmWA/9qSyvJuYNWVsNj1LrhzjwckVtidYWTx0qjy5+iXC"
    "wjmI2qSD3JqaVeF6nn2Nrq7TFKMbyPecqxYEDN+xn1LCNT4zbdItps1aQ5SZdQDgqdFYKL"
    "rxlGpM6p7cwvGHWURZsJWMWrD1bFrCwkNMZLylJxK1DoGbeoRyw6J+6QUIIu//8IEjQUBZ"
    "oOyMyGvxg1ocj1PZMBCaw0BCfO/JDVD2t5XbQqepCBQysTqNKxKB2Lqul0+sjO+OS4yF3M"
    "Co38JOOqtWwLgV+ltMNalHG6s2mOk6RwnljQbxS1q5l9E04WzVdHb4/evX5ztJgjFiWrpo"
    "ZsOA5WbAnPyzXUCxFNMmlYs7AKh7Fpscu6uK+m+TS4heCarpczi66DNuLSwObE5kMnJzyD"
    "iSrdNsuo4c3CO3CtuTGgUjIP7AJ7NK6AcC6vBnkNyA4YlxtiHLJqiLMQj71vhkOFNDj0wx"
    "yvTCHAWUYNb45Kpn3M2sdcQ1FsqbdR+5h/RqnX3MccbB9o+XLMuLRNFYm9lVTFHTMe52Li"
    "g1X+5yh1OcEHKnrEuNYd3eamN59CT8WtDOggBt0eqgjlFrn62CKqKTJ0PeJyppzJWcfzBm"
    "30eI/3waBAuj4Zee5MQCVhUDQnM8+W7EPwnyeI6U6m1GMvoLkXgkmksyURLqFEgAbHPOIx"
    "GEZCEo78Pe7Cv4pZAAlnSOG4I5sfkn74auhko331gv3JkAaA9cnYdSxo3pkT056OmSfZgy"
    "QD1wcy6cILh87QPtmDJQAb877ZJjtUX+/294sc59/jHP9ZPOPfqVnV2+f9vAA/ssc7PqSy"
    "KHdhCBX4alJ8u5Aou2rhbP/aXa3JLtbNy5vrTxF5Wr3N5KZLP8eJg327zf2JQr7Dg1zNHK"
    "d5xP10oZ3GVef2tnP9qVFNAhHbCQl/9PjX1mXn/ISo/3q8/evnzpc2/B3+SC9SpRKb35RJ"
    "bE4rM7HE5jc5ewcAYQPUq1xbb2UmeZJxF0ZHarPGy5dlNmu8fFm8WQPrUvmIsJhPGbfwNT"
    "Jwn7quwygvSEtMcqbwHgDrYw2JRcnTTkinNzeXiQnptJOece6uTtvQ45UAlilzWW/GQoWq"
    "Mv8nmHahez/15I8AsoepDcbSBkZtlvsHGLZbJJF627FZ9wXKC93Wk6msErVJsz3drtaXtT"
    "YYYhkbLufM3MwzlObVQ6jOQ0iFJb5Rx1buvKqyznJradda2ujyAfm5juXOuOFzaeds5lwj"
    "84I2tOTrLPnQr1hhlYxx6AUys0CCFbrh8pjg1IGTuowiHS77GaVe83DZ7ZybZ74nXK+REx"
    "+L1R6sCogJoDPMJeHaANgvY+ax5T4J5MeNExipuof+hcErbgkVKpqNmQo92YJYPvDgrsps"
    "NOx7G1ShMc4epKG+hco+ub67vCQTRrkgUwrtWmSPu0TpolGwbf9EHTomzDGzfId5xB5xF/"
    "qFKg3w6HGlvwQxsSAiRoDCnwCVLUvt+sAPyDmVLP62FQ8i0/GtHYhvPfd8/MgRLtXrc/Fd"
    "H2OJeOsMdKN11u187XQ77duT6LRDm4kev2i3LrsXJ2S5v+35QyrKDMe5BjSMqnts8ni/c5"
    "vN9phxObtsAjx804Q1ZANFL4ddG8b1Ue6yOn1ina4o7DSvlnSdJY0quTscbub1yjBrWddZ"
    "1vhpzPRh2WbGkNqO7+WdL1WoaBexa0dY2hGm1jvmeW7OPspibTvJtQuB7kfK46iRH+K/7q"
    "BR4ITAqoO1Hog/Q6pSx0F4Pid7rkfEvT2dgnEPf+8nXAbwW7kRVqfhfl9T6/NWE54APJ38"
    "gPwe5ZDp08f1iQ/aO6C9A8/tHYCnj0asYH1eL48Ye61Fcnt20T6/u8R818jja/X4Vev6rn"
    "V5QmBp84PDh59fIFuYofy5fX2+QYZyyHZCwh89/uXu+lqVhD96/Pbu7Kx9C+Mo/NHjH1sd"
    "Jcbg/x5v3XUvjEUyc/wvaA+sDeOyc9XpYl38L2j5f53Pn7E4/FEP6evQcTH02xlELBM6Vs"
    "egbyT1JKd2O9TZ7TC0uS3GG4k5xarlXGc525JNhDFkEhWNKgHcNJ92KKUdSgFE/lTgVtPq"
    "2MYZNbj54IaOkMrYxvg0tGloK/tAtfuz2ja2mevdF1mx+QgvOXYP4lfNd2UMk+a7YssE61"
    "LOfEYFujvv806BWeWgTDHu0OlGT+CrrImP/w4WzkuUYyPHy7+sPFjl51d+UmdBt9bTf+a5"
    "Qrzw2NSxTUqmzHuBLZCJL33qEPZgOj4m8p0QdwZ954CozXlzlSdIyZBxEyRIVLfLuv5/YN"
    "uYfnjmUFC7LTKYqxgBle7ENgmeV2nj10CTd59RNyV7Q48x4npBg8za/0D6qpn0mR49bmKb"
    "wakdwVxF5JhK4oC2SmwpiEKSmJSTAYNXceDNpmAMkqHnToL7VNlMHdBROl5RGJKog1N8B4"
    "+EKI5CqF5XBe4Fg17MSi1mGyxj37eA1VG9feJLTjffeq23XW+P92Pqe9BkpftVYyy7N329"
    "bpaYvV43CycvrKqNGvgLG4xd9/6cOTYqKXnKYJpkpUo4C4hBBjHqUikgoCTx8GQzQWZ0Dh"
    "qQUr0Yt6YuSCI/22MtFypzYTiKRJs/mg8PoPgJPBVt77x92fna/tI+30clLqDwmMTLBlUq"
    "ietLJGqd7x+SFrFsMaXozsMz1mYcT1eLvpTMxrbDSN8MNEdjMO/jrhY8rk0dsqbKY+dN9I"
    "mDz6BjRq0P0I6q73GHDSXof2PMVAHlE8o9io7i2KOJsCdTZx5qnOKQLE9lU08SeBYcN1kf"
    "PmTKQMME7bDHFVK4G8cNNsQoZRSVzXvGpsE9KOF+HUUpiA0f74Guicp0Ugq5e2QUV6ggRt"
    "Q5G2WW8UyVThsezKB2zWAyzYLzIKFxRp+ks2xqmmUTl355GcS59GXzm+thsUFT2h8Z46lz"
    "okdtkpzqYDLvOMSLWb7SJBLn0pPIxpPIFqYpxQ6r2yhNKeTv8YUSeBKpc5hMhlofFlArrX"
    "o+TyrRBmdf6XOvVgXx0hpoBtcS+8GS7DuYpbVLroylbVZlGU9y7Z5D41H8sWlzt+rgyuPX"
    "fsI6D65gL3SBFlEcS05y7VAsWW+6276sE52t/VNMVTpxd3flXK/AShs9nI3iqEpQf1AmpM"
    "IWpOXjKR9IH6/7U5EI9PqzB+BTV5yHF81EbkDiMZOB4SvIHsYQgkphjzgszB4jJl4oI/ZX"
    "xGAe40kVN+TqIME6leSZgwQTJgTen1rNi5rk2rnco6MyasxRsRZzlFFitKf60T3VCp0K+E"
    "b0Owjuj++/OgzwjGEAXMSzwBffYRLR70TPXqX7Psb9Jdrc3EgU2gypaobgsT0XwSEVxbZI"
    "jKiUQaKO+VkefbHeLGlFGUaxA7cIHrjFLHUkj0ic07N31HxPwoPYBOGuBDafS5VijxaGF1"
    "xdnjBHfvgTepw92EKK4E7MIMULqxwYSUKSP90Btqjy+FWTwbMOSR9/wEv1gdHEizLh4YeL"
    "shkV0PDElvCsA8zICurBMnJV7LFPhq7j4O6BIO3/QZLwkMnNzyjWNlEtbSKtrD/j8UT5+G"
    "7DkUSbhvp+eFLCBsct6iMWV0V7wkUiZ05edXdjjEvf27jm3sZ6qWa41/I2sl2LlbMEWSn1"
    "TC0Tcat4vYLWVZoN6DVBWj33JwPmkREoURwT64MbHYKrv1ExgYf7oA8tZJnjH/4hLeqNjn"
    "VbXIv1mW1y3mz/bryaTGUt5tlmrmkZ1qycsOiSZt0MVSyC75gj9KUsj3ApS+ENdMUTb/EV"
    "dLugejePj8vkqxwfF+erYF0qJRgGVQWEQ/IdRPdVqWygVyuygV7lZAO5XLK8bTUY1i7wyy"
    "5Z0k5Z25TkH+LYYhuDESvARTBWe8bTTvCDpIsVGzh97sXs3/8DplVzHw=="
)
