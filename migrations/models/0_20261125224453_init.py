"""Initial schema (SQL for SQLite and PostgreSQL)."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return """
        CREATE TABLE IF NOT EXISTS "garmin_authentication_state" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "user_id" VARCHAR(64) NOT NULL UNIQUE,
    "session_data" TEXT,
    "status" VARCHAR(16) NOT NULL,
    "status_reason" VARCHAR(200),
    "mfa_pending" BOOL NOT NULL,
    "mfa_state" TEXT,
    "mfa_expires_at" TIMESTAMPTZ,
    "mfa_attempts" INT NOT NULL,
    "connected_at" TIMESTAMPTZ,
    "last_validated" TIMESTAMPTZ,
    "login_cooldown_until" TIMESTAMPTZ,
    "version" INT NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);"""
    return """
        CREATE TABLE IF NOT EXISTS "garmin_authentication_state" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "user_id" VARCHAR(64) NOT NULL UNIQUE,
    "session_data" TEXT,
    "status" VARCHAR(16) NOT NULL,
    "status_reason" VARCHAR(200),
    "mfa_pending" INT NOT NULL,
    "mfa_state" TEXT,
    "mfa_expires_at" TIMESTAMP,
    "mfa_attempts" INT NOT NULL,
    "connected_at" TIMESTAMP,
    "last_validated" TIMESTAMP,
    "login_cooldown_until" TIMESTAMP,
    "version" INT NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSON NOT NULL
);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TABLE IF EXISTS "garmin_authentication_state";"""


MODELS_STATE = (
    "eJztWV9z2jgQ/yoaP6UzTSbQJO3knkhCU24CdALXy/TSMcJeQBNZciU5hOnlu58kbIxtTI"
    "BJUi7DS2LvP69+q91Fq19OwH2g8uASi4CwWqRGwBTxsCKcdRRW4JyiXw7DgXl4Wvg9cnAY"
    "pqKGoHCfWu2hVXNxRs+VM8W+VAJ7SosOMJWgST5IT5DQyBkDdeaJSajAR9qUGiEJUmoWws"
    "xHzc81ZE2hAReIM0CRBHFgDPvc05YJG25o45bdst49CCPXQ0PBx1IzEWjSBI0FUfDH9J+Q"
    "yONBiAXsa3P7EpSRIwpJjjCSlI9BIAE/I5AKMaN/y7j+a5WlFmFgJCgfEnaAerFrro8V7l"
    "kHe8EATwHroRGnvjZPJ8gj4QiEggeF+jzSYoprh43rLvF7aE8CGGPinnhwYFfPe+8sMhEj"
    "2hlX8SHomAiNzz8/NJkwHx5AJq/hnTsgQP3MViC+MWDprpqEltZg6rMVNKD3XY/TKGCpcD"
    "hRI72cRJowZahDYCD0iox5JSITdhZRGm+aZCdMPU1Fpi7O6fgwwBE1m8doTx1IaY7rttpd"
    "t1Pvuq5T2FiJxtw+iUkeZ2ZTalelXf3QuLBfrRx9PPr04eTokxaxbs4oHx+nn06BmSpaeF"
    "pd59HydUCnEhbjFNQ4ZkVkz0dYLIZ2TiWHr3Y8j2+C5vYCHOAHlwIbqpF+PTlagua32vX5"
    "l9r13snRO/NBrkvHtMy0Yk7VsgzgKcDzKVVEuatTaDHKeb2NoI6BnCGdiKRQp3XvFbBegm"
    "23ftM1lgMpf9J5TPeatRsLdzCJOVft1mUiPheD86v2WR57XbciuXhv11kUWOQb2kXMPChG"
    "YKb9PNt8FfCdZqPTabQunfUikKidovjhln2rXTUuTpH9d8vqN18b13X9Hj/km9QquVE5WS"
    "E3KieluWFYi+LjCsBSL2ONElRQfAvZkUW7eni4AtxaqhRvy8sCbpp5CMw3bhTgPuOcAmaL"
    "Ec9p5vDua9WXSokZ5XUL0lm7fZUpSGeNfMX5q3lW1zveBkALEQXzPTeL+uw356r1P6P0Fr"
    "b3axd/AyA8hESAdLEqQn+hkVMkgHL4s9q5GPix+kHy8LYi0mjWO91a82smLBe1bt1wqpmQ"
    "JNS9fOmfGUF/N7pfkHlF39utukWTSzUU9oupXPe7Y3zSxzXuMj52sT+PSUJOSIVoY6UgCN"
    "WChl96TMirPX1geK6ydrjVB4YUWG2egafXvkES5XV3KbTNKUSxVO49psS38K8Z66L2Ltpb"
    "HW0z8tHx49TnY+ZGTBG6dsxLbOwiv82Rj+eKa3TJOY1dgyw0SH0K3bA9ZjSfIWk2wvklT7"
    "R6gX6b0Umc0P+TLIprz9IkikJ/w6hnNXdR35aoL6id1ntzHzG4mxueG0Ife3djLHy3wOFV"
    "XiZbZAXVIE/BDA9tzAy4xs34BqwGgngjZ8HdWMx5v+wiDKcyT915lcd5d3ezXXc3pY28fH"
    "Ba3slfcKj9ejPT4+NVZqbHx+UzU8PL9neTVGsgHIu/QXQrK02kK0sm0pXiRFp/UQFb0ET/"
    "7LRbpVOFRCXfPYmn0L+IEvliv0p/zxnDgLF8QJqfheZ6nzFgBqS/tZk9/gdHsuV1"
)
