"""Login cooldowns per Garmin account (`garmin_account_cooldown`), named by a keyed hash of
the username and shared by every user id and replica, and the account of a pending MFA
challenge (`mfa_account`), so its code step honours them too (SQL for SQLite and
PostgreSQL). The per-user `login_cooldown_until` stays: replicas of the previous release
still write it while an upgrade rolls out."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect == "postgres":
        return """
        CREATE TABLE IF NOT EXISTS "garmin_account_cooldown" (
    "account" VARCHAR(64) NOT NULL PRIMARY KEY,
    "until" TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_garmin_acco_until_5277d5" ON "garmin_account_cooldown" ("until");
COMMENT ON TABLE "garmin_account_cooldown" IS 'One Garmin account''s login cooldown, shared by every user id and every replica.';
        ALTER TABLE "garmin_authentication_state" ADD "mfa_account" VARCHAR(64);"""
    return """
        CREATE TABLE IF NOT EXISTS "garmin_account_cooldown" (
    "account" VARCHAR(64) NOT NULL PRIMARY KEY,
    "until" TIMESTAMP NOT NULL
) /* One Garmin account's login cooldown, shared by every user id and every replica. */;
CREATE INDEX IF NOT EXISTS "idx_garmin_acco_until_5277d5" ON "garmin_account_cooldown" ("until");
        ALTER TABLE "garmin_authentication_state" ADD "mfa_account" VARCHAR(64);"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "garmin_authentication_state" DROP COLUMN "mfa_account";
        DROP TABLE IF EXISTS "garmin_account_cooldown";"""


MODELS_STATE = (
    "eJztXWt32jgT/is6fNnkHJrT0vSWfiIJbdg3l56GdPfssscIW4A3RmItOYSz2//+zsg2+A"
    "qY5mKovyRY0kj2M7qMZkajf2tjYTFHHjRNU3hcnQjhWGLKa0fk3xqnYwY/8orUSY1OJosC"
    "mKBo39E0Q+qObW5Qn8Ywo0R9qVxqKig2oI5kkGQxabr2RNkCW65dcUY+6wpIUMEvkjhiCM"
    "9hRXUiR9RlFunPCLtj7ox4krnEtgjlVpDisoljm/QAG7WECa3afPgI9Xd5l/eCinrEloSS"
    "WzYD2hGVIyIGRI0Y4cIdU8eWkBw0jRUixGRPMgY1wOOdbbIDyaQEIORB+C6yt18nHNvUNY"
    "V0R/pJI04UcxwJbfSFNSPTkW2Oujx4Ixm2p0auUMph1gFpEldMiWPfMUmgiO2Qnv7X+0jY"
    "/cTG74YC8CEuI8BapiBhOmIAV5f7OLmMWhJfYEyEG+RxAc/uHEJEYuraSjGuWeBx+x+PGU"
    "oMGZYDRvz5FyTb3GL3TOLjnzX9FrW/MH1yawxs5lixrhh8E1anMw01m+iME+DWJ10cmd2H"
    "Dud4Y54gmczUSPA5DXQITB0yzlwKnxjpkNxznKArh0n+60OCcj02f29rkWCxAfUc7NZI7b"
    "/GIq1mGJdXHeO61TGMWqrLhxSRXhokmdATYLjYwEiNxJjeGw7jQzWCx7eH3/12FmD4pbDB"
    "b82vJ2fNr3tvD/exQQFjzh+bl0FOQ2d911VQRf1KNCMWgPsMScF9Cngpe8yyIZ8TJQC3Aq"
    "qD8Mcm8IcJC/wXs8gTMGAJ4J32Reu607z4gtWPpfzH0VA1Oy3MaejUWSJ1722COfNKyG/t"
    "zhnBR/LH1WVLwymkGrq6xUW5zh81fCfqKWFwMTWoFcUkTA6TvuPQGtxGeI0JfWreTqlrGa"
    "kc0RB5ZdNZ48Y4mUI5HWomIZr4nvPFRNl3tpplLzRB3tIVhkZLFVtSfEIivfGYurOPZA+n"
    "VMO26mS+bPlFIG0fpzE9gVPludTBqX3FivIg1WfMljA9+hXpYZOqyp8249PporxU1FUGDj"
    "rDU+aSKdYvHh/ux/awzVX2YPfLJ0a67U+40bEdzJLlnVmH+AovPjQar1+/a7x8/fb9m8N3"
    "7968f/keyur3TWe9WzIbHLc/ty878cGNCSvm2wXH1l3gIiQPs8A98wz7OEvcAuKMkVOow2"
    "fTrx4A2wD9E46BqFAXIKnBKyTaJQg36v/BJFMaHjxy99f/C4Aclt89bBtv3qwBLpTKRVfn"
    "xeFNrLMFJec0dSVCl06EzmG3I0yasVXKH1lZtLs3yl59WGOQvfqQO8YwKz7ELBCU8Z0Mya"
    "BlS6Yx/+QImrN6ZxEnQB8g9fbBvgTm06ub4/MW+fK1ddK+bl9dxseRztR7hH8cW2kIvraa"
    "50nUbeiv3GTGmCnmFgQ9TVthvgbmMCkI12bFwI4SVSivgTK9AyyGzBi5hXCOk1VIr4E0Lg"
    "wFUV6QVAivgTBz2J2/vg2hyUJIp0krxNdA3KVT428pMrD+9frqMhvqKE1SwLdNRf4jDqyY"
    "uyXaIxoxqT4U8fYumr8npb+T86vjpLiOFRwnwB/YrlQgyrEM+JfvtOKUO7jLqqGJ7oo7s2"
    "BEbsmuK5g8lm66vAnyxTJohiFwhWUqRllxvSxcz9hr67cvibXqlNrO7IxRR+9oUwaraHZ9"
    "mc3KwoLGaFFyLbsVCPSMW9QlFp2hOwHVLgC/SOJXFBqa6mRqwxOjJiQJzzUZFIGVhuDEmW"
    "2yerCaV1mrwoYMHFopQ1Vli6psUSWdTh9ZGR8fF5mLWe4mP064bC3bQuCXCe2wFqWU7myS"
    "oSTJnSfm5Tey2pVsfxNMFo1Xh+8O379+ezifI+Ypy6aGtDkOVmwF7WVu1HMRjRNVsKZhlQ"
    "5jk3yVdX5fTdJV4OaCawo3YxZdBW1IVQGbYZsPlJzQBpNFum2asII3DS/66xp9qhRzYV9g"
    "D0cFEM6krUBeAbIDm8sNMQ5IK4jTEI/cO8OhUhkc+mGGViYX4DRhBW+GSFbpmCsdcwlZsa"
    "XaxkrH/DNyveQ6Zv/4QNNTI8aVbWpL7LWi2u6Y0jjnF66vcyovRgcieki4Uh3d4qY7m+Bx"
    "MKgKFcT+WTV9KO7iU5PoqshAuERw/6RaWvG8QR36hB1sKLBcjwz12TSg8I/h4Rkz9tH/50"
    "piivGEuuwFVPdCMoXlbEWkIJRIkOCYS1wGw0gq/0hdlwv4q4nx4B5nWEKfcTsgveDVUMlG"
    "e/oFe+MB9QHrkZFwLKjemRHTnoyYq9i9In3hQTEl4IUDZWhPH/Aj8/N9+utFb3/NQ3GFlO"
    "M/i2b8ByWrcuu8d/CAYURTExlSaZQ7MIRydDUJul1wlF22cLZ+7yyXZOfr5vnV5eeweFK8"
    "TTgHcZjWCjn/Lyh2Ae+EY/LbdRyTk8JIxDH5bYbvv/IylGSIb4t7Y41xm/u+sBlGiZD66U"
    "xntYv29XX78nOtGOIh2REJfnT5t+Z5+/SI6H9d3vr9S/trC56DH10OK7vxpXV56lMtHpLi"
    "wXNyzgDBNnOXvdSHP064e+Ok8fLlOsdkXr7MPyaDeQlPUBCjJoxb+BopuI+FcBjlOQ6hcc"
    "oE3n0gfazBMk952qXg+OrqPLYUHLeTc/3NxXELerxmwMJZMa1HmguvRVbeGNEudO+nXnYR"
    "wOJLb5xqF3B/7EkcEdsgQEiCbPeQfnghXvdNHShGbqAgS1M/gJKsZBzYXp1YWhWqB4hSbD"
    "xRRSzASbKnOyH/8rGG1QObdaB6zszNtMxJ2moIlXkIaRPnHXVsbRooyus0dcXtUnMb1cfz"
    "mHfGRjG08uqoOF9mzgc2igKrZISiWiBTC6TLNjTCxikrI2xZRlFlev8ZuV5y0/v1jJsnni"
    "uFW8uwtUdy68uM6xLKGeai4Epj+m8j5rLFmSukx0NYaPW+hf6FhnBuSW121gFWbYXBAi0P"
    "aPCEdtqy/qMVajM7Z/fK0N9CVY9c3pyfkzGjXJIJ9TB67R4XRMuioeF+3w9EK80RszwHg+"
    "QOuYB+oVN9PLrcjzKr7eskjCArvTGUstVaJ8jwAzIiHEbftmBQw8pWvgO28ueejx9Z0aZ7"
    "fSa+q+2JIW2Zga41Tzrtb+1Ou3V9FEZOtZns8rNW87xzdkQWZ2WfX7+st+E414CEUfS8Xh"
    "btDx7Z255tXMaJPR8PzzRhDdlA0MsgrzbG5RHu0jJ9bJ0uyOwkbcXpMnMaRXIxGGym9UoR"
    "V7wuM6/x05jpwbLNjAG1Hc/NilWXK2jnkVeKsKQiTK93zHVFxpnsfGk7TrV7hu0H80wqkR"
    "7iV9Gv5SghMKu+UgPxd1BqrdAyrsfJnnCJvLUnE7z1xeP7MZUB/NZqhOUu/T9W1VoXwyw2"
    "jnjTQZ38GfpLVjcZVNFjKu1ApR14bu0AtD4cspz1eTU/IuSlZsn1yVnr9OYcfbtDja/V5R"
    "fNy5vm+RGBpc3zA5k/P0O20Bs/6hNfgCdzv/rgR5d/vbm81CnBjy6/vjk5aV3DOAp+dPmn"
    "Zluz0f/f5c2bzpkxd9yPPkF9sNswztsX7Q7mRZ+g5v+1v3zB5OBHObhfmY7zod9OI+I6pm"
    "N9pcJGXI9TVmqHMqsdBja35WgjNidIKz6Xmc+2YmNpDJhCQaOIATdJVymUkgolHyJvIvHY"
    "enFso4QVuNngBoqQwthG6Cpok9AW1oFW6s9iBzOnwr3N28VmI7yg2D2IXzXer7MxabzP35"
    "lgXkKZz6hEdedtVkSpZQrKBOEORUp7Al1lSXT8N7BwniMfaxla/kVmfZmeX+tJnXm5lZr+"
    "E1dI+SK4rp5MmPtCX2Y/9pRHHcLuTcdDR74jIqbQd+r+HfAz7SdIyYBxEzhIdLdLq/4fsG"
    "50PzxxKIjdFunPtI2AKjG2TYKxb238Gqjy5gvKpmRv4DKGd88HF9bvfyQ9XU0yPlCXm1in"
    "HwHIn6uIGlFFHJBWia0k0UgSk3LSZ/AqDrzZBDaDZOCKsX83M5vqYD9r2ytyTRJlUIrvYH"
    "iZfCuE7nVF4J4TVIvZWovZBsvYjy1gZRRvn/jC5M2PXlfHrrdH+zHxXKiyUMyICMnuTV+v"
    "G2vMXq8buZMXZpVGDPyN9UdC3J4yx0YhJUsYTBZZKhJO/cLAg0jptVxAQEjiQZRESaZ0Bh"
    "KQFr0YtyYCOJHt7bGSCoW5wBxFwsMfjft7EPwkRljcO22dt7+1vrZO91GI80u4TOHFpdqV"
    "RHgKCzVP9w9Ik1i2nFBU52G8xinHSI3hl5LpyHYY6Zm+5Gj0Zz081YKhH3XARp0eiTfRIw"
    "62QUeMWh+hHp3f5Q4bKJD/RuipAsInpLsUFcWRpom0xxNnFkic8oAsIjzqliTGleQm68GH"
    "TBhImCAddrlGCk/jCP9AjBZGUdi8ZWzi36kUnNfRJSWx4eNdkDVRmI5zIfOMjKYKBMSwdM"
    "ZBmYU9U7vTBoEZ9KkZdKaZU9ZjEmf4SZWXTUm9bKLcX58HUaqnE8J2hBnReIqLQbO2PjJC"
    "U2ZHj9I4OZVhy7zjEM9n+UKTSJSqmkQ2nkS20E0pEn5xIzelgL7L50LgUSjOoTMZSn2YQK"
    "2k6Pk8rkQbxL6q4l4tM+IlJdAUrmucB4uT76CX1i6pMhZ7syLLeJxq9xQaj6KPTW53iw6u"
    "LPpKT1jmweWfhc6RIvJtyXGqHbIlV4futs/rpPLW/immqspxd3f5XC7DSgs1nLV8q4qfX1"
    "/HpMLmRde3p3wkPbw6VFsiUOvP7oGO4O2CwaVVoRqQuMxksPGVZA9tCH6mtIccFmaXERMv"
    "p5L7S2wwj9FSwQO5lZFglUjyzEaCMZMS72IupkWNU+2c79HhOmLMYb4Uc5gSYipN9aNrqj"
    "U6BfANy+8guA/ffyszwDOaAXARTwOffytPWH4nevYy2fcxbuSptpsbsaLahhTdhmDYnjM/"
    "SEX+XiRSaK0NiQ7zswh9sXpb0gw9jCIBtwgG3GKWDskjY3F69g4bH0gQiE0SLhTRdyNpF3"
    "vcYbiAdnI78uAtdDm7t6WS/v26vosXZjkwkqQif4s+1qj9+HWVflsHpIc/4KV6QGjipbvQ"
    "+ME8bUolVDy2FbRVR48sPx92RkLbHntkIBwHTw/4bv/3igRBJjePUVztiUq5J6qE9WcMT5"
    "SN7zaEJNrU1PfgTgkbhFusQiwus/YEi0TGnLzsNtIIVXUT6YqbSMslmuFZy+tw75ovnMWK"
    "rSWe6WUiuiteLaB1tGQDco3vVs+9cZ+5ZAhCFEfHev9GB7InmS8EQeMeyENzXmbohx+kxu"
    "qgY9kW13x5ZpuUN9t/Gq8kU1mTubaZubUMcpZOWHRRZtUMlc+CH5gjqktZHuFSltwb6PIn"
    "3vwr6HZB9G68ebOOv8qbN/n+KpiXcAmGQVUA4aD4DqL7ai1voFdLvIFeZXgDCa5Y1rEaNG"
    "vn6GUXJEmlrG0q8h9xbLmNxogl4CIYyzXjSSV4Pa5ixQqOn3sx+/5/K4n4CA=="
)
