"""Login cooldowns per Garmin account (`garmin_account_cooldown`), keyed by a keyed hash of
the username, shared by every user id and replica (SQL for SQLite and PostgreSQL). The
per-user `login_cooldown_until` stays: replicas of the previous release still write it
while an upgrade rolls out."""

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
COMMENT ON TABLE "garmin_account_cooldown" IS 'One Garmin account''s login cooldown, shared by every user id and every replica.';"""
    return """
        CREATE TABLE IF NOT EXISTS "garmin_account_cooldown" (
    "account" VARCHAR(64) NOT NULL PRIMARY KEY,
    "until" TIMESTAMP NOT NULL
) /* One Garmin account's login cooldown, shared by every user id and every replica. */;
CREATE INDEX IF NOT EXISTS "idx_garmin_acco_until_5277d5" ON "garmin_account_cooldown" ("until");"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        DROP TABLE IF EXISTS "garmin_account_cooldown";"""


MODELS_STATE = (
    "eJztXVtz27YS/isYvdSecTyJ4tycJ9lWYvX4konltNOqQ8EkJLGmAJUALWva/PezC5ISrx"
    "Kp+EIpfLFFAAuQ3+Ky2F0s/m2MhcUcud8yTeFxdSyEY4kpbxySfxucjhn8yCuyRxp0MlkU"
    "wARFbxxNM6Tu2OYG9WkMM0p0I5VLTQXFBtSRDJIsJk3XnihbYMuNS87IZ10BCSr4RRJHDO"
    "E5rGiPyBF1mUVuZoTdMXdGPMlcYluEcitIcdnEsU26j41awoRWbT58hPp7vMf7QUV9YktC"
    "yS2bAe2IyhERA6JGjHDhjqljS0gOmsYKEWKyIxmDGuDxzjbZvmRSAhByP3wX2d/dIxzb1D"
    "WFdIf6SSNOFHMcCW3cCGtGpiPbHPV48EYybE+NXKGUw6x90iKumBLHvmOSQBHbIX39r/+R"
    "sPuJjd8NBeBDXEaAtUxBwnTEAK4e93FyGbUkvsCYCDfI4wKe3TmEiMTUtZViXLPA4/Y/Hj"
    "OUGDIsB4z48y9ItrnF7pnExz8b+i0af2H65NYY2MyxYl0x+CasTmcaajbRGcfArU+6ODL7"
    "Bjqc4415gmQyUyPB5zTQITB1yDhzKXxipENyz3GCrhwm+a8PCcr12Py9rUWCxQbUc7BbI7"
    "X/Gou0hmFcXHaNq3bXMBqpLh9SRHppkGRCT4DhYgMjNRJjem84jA/VCB7fHnz321mA4ZfC"
    "Br+1vh6ftr7uvD3YxQYFjDl/bF4EOU2d9V1XQRX1K9GMWADuMyQF9wngpewxy4Z8TpQA3A"
    "qo9sMf68AfJizwX8wiT8CAJYB3O+ftq27r/AtWP5byH0dD1eq2MaepU2eJ1J23CebMKyG/"
    "dbqnBB/JH5cXbQ2nkGro6hYX5bp/NPCdqKeEwcXUoFYUkzA5TPqOQ2twG+E1JtxQ83ZKXc"
    "tI5YimyCubzho3x8kUyulQMwnRxPecLybKvrPVLHuhCfKWrjA0WqrckuITEumNx9SdfSQ7"
    "OKUatrVH5suWXwTSdnEa0xM4VZ5LHZzaV6woD1J9xmwJ06NfkR42qar8aTM+nS7KS0VdZe"
    "CgMzxlLpli/eLx4X5kDztcZQ92v3xipNv+hBsd28EsWd2ZdYiv8OJDs/n69bvmy9dv3785"
    "ePfuzfuX76Gsft901rsls8FR53Pnohsf3JiwYr5dcKzoAhcheZgF7pln2MdZ4hYQZ4ycUh"
    "0+m371ANgE6J9wDESFugBJDV4p0S5BuFb/DyaZyvDgkbu//l8C5LD89mHbfPOmALhQKhdd"
    "nReHN7HOlpSc09S1CF05ETqH3Y4wacZWKX9kZdFu3yh79aHAIHv1IXeMYVZ8iFkgKOM7GZ"
    "JBy5ZMY/7JETRn9c4iToA+QOrNg30JzCeX10dnbfLla/u4c9W5vIiPI52p9wj/OLbSEHxt"
    "t86SqNvQX7nJjDFTzC0Jepq2xrwA5jApCNdm5cCOEtUoF0CZ3gEWQ2aM3FI4x8lqpAsgjQ"
    "tDSZQXJDXCBRBmDrvz17chNFkK6TRpjXgBxF06Nf6WIgPrX68uL7KhjtIkBXzbVOQ/4sCK"
    "uV2iPaIRk+pDEW/nvPV7Uvo7Prs8SorrWMFRAvyB7UoFohzLgH/5TitOuYW7rAaa6C65Mw"
    "tG5IbsuoLJY+mmy5sgXyyDZhgCV1imYpQ116vC9Yy9tn77ilirTqjtzE4ZdfSONmWwimbv"
    "LbNZWVjQGC1KFrJbgUDPuEVdYtEZuhNQ7QLwiyR+RaGhaY9MbXhi1IQk4bkmgyKw0hCcOL"
    "NNVg9W8yprVdiQgUMrZaiqbVG1Laqi0+kjK+Pj4yJzMcvd5McJl61lGwj8MqEd1qKU0p1N"
    "MpQkufPEvPxaVruK7W+CyaL56uDdwfvXbw/mc8Q8ZdnUkDbHwYqtoL3MjXouonGiGtY0rN"
    "JhbJKvss7vq0m6GtxccE3hZsyiq6ANqWpgM2zzgZIT2mCyTLdNE9bwpuFFf13jhirFXNgX"
    "2MNRCYQzaWuQV4DswOZyTYwD0hriNMQj985wqFQGh36YoZXJBThNWMObIZLVOuZax1xBVm"
    "yotrHWMf+MXK+4jtk/PtDy1IhxZZvaEnulqLY7pjTO+YX3ipzKi9GBiB4SrlRHt7npziZ4"
    "HAyqQgWxf1ZNH4o7/9QiuioyEC4R3D+pllY8r1GHPmEHGwos1ydDfTYNKPxjeHjGjH30/7"
    "mSmGI8oS57AdW9kExhOVsRKQglEiQ45hKXwTCSyj9S1+MC/mpiPLjHGZbQZ9z2ST94NVSy"
    "0b5+wf54QH3A+mQkHAuqd2bEtCcj5ip2r8iN8KCYEvDCgTK0rw/4kfn5Pv31or9b8FBcKe"
    "X4z6IZ/0HJqto67y08YBjR1ESGVBrlLgyhHF1Ngm4bHGWXLZzt37vLJdn5unl2efE5LJ4U"
    "bxPOQRymtVLO/wuKbcA74Zj8tohjclIYiTgmv83w/VdehpIM8W1zb6wx7nDfFzbDKBFSP5"
    "3prHHeubrqXHxulEM8JDskwY8e/9Y665wcEv2vx9u/f+l8bcNz8KPHYWU3vrQvTnyqxUNS"
    "PHhOzhkg2Gbuspf68McJt2+cNF++LHJM5uXL/GMymJfwBAUxasK4ha+RgvtICIdRnuMQGq"
    "dM4H0DpI81WOYpT7sUHF1ensWWgqNOcq6/Pj9qQ4/XDFg4K6b1SHPhtczKGyPahu791Msu"
    "Alh+6Y1TbQPujz2Ja8R0+BK5htomTf0AqpuKcWBzNTVpBR3yCw0z44kqY5dMkj3due2Xjz"
    "WsHtjYANVzZq6n+0zS1kOoykNIG97uqGNrhXVZXqepa25Xmtuo1JxHYjPWiuyUV0fN+Spz"
    "PtCcl1glIxT1AplaIGG3v+byGKOsTYNVGUW1Qfhn5HrFDcJXM24ee64UbiPDAhzJ3Vtm8p"
    "VQzjAXBVeaeH8bMZctTgIhPR4NQlvsLfQvNM9yS2pjqA77aSsMYWd5QIPnhtP23h+tUBt/"
    "ObtXhv4Wqvrk4vrsjIwZ5ZJMqIcxVXe4IFoWDc3Ju354VGmOmOU5GLp1yAX0C53q49Hjfu"
    "xTbfUlYVxT6Y2hlK0KnWvCD8iIuxd925Kh9moL7hZYcJ97Pn5kG67u9Zn4rrZyhbRVBrrR"
    "Ou52vnW6nfbVYRjP02ayx0/brbPu6SFZnOB8fq2n3objXAMSRtlTZFm0P3iQbHO2cRnnyH"
    "w8PNOENWQNQS+DvN4YV0e4S8v0sXW6JLOTtDWnq8xpFMnFYLCe1itFXPO6yrzGT2OmB8s2"
    "MwbUdjw3K4JarqCdR14rwpKKML3eMdcVGSeF86XtONX2GbYfzF+mQnqIX8VNI0cJgVl7Kz"
    "UQfwelCgU8cT1OdoRL5K09meBdJB7fjakM4LdWIyx3NP+xqgpdV7LYOGL8/T3yZ+jFV8fX"
    "r2Oa1NqBWjvw3NoBaH04ZDnr82p+RMgrzZKr49P2yfUZehyHGl+rx89bF9ets0MCS5vnh9"
    "d+foZsoI941FO7BE/m3t7Bjx7/en1xoVOCHz1+dX183L6CcRT86PFPrY5mo/+/x1vX3VNj"
    "7k4efYL6YLdhnHXOO13Miz5Bzf/rfPmCycGPanC/Nh3nQ7+ZRsQipmMd6H8trscpa7VDld"
    "UOA5vbcrQWmxOkNZ+rzGdbsbE0BkyhoFHGgJukqxVKSYWSD5E3kXiYujy2UcIa3GxwA0VI"
    "aWwjdDW0SWhL60Br9We544JT4d7m7WKzEV5QbB/Er5rvi2xMmu/zdyaYl1DmMypR3XmbFe"
    "domYIyQbhF8bueQFdZER3/NSycZ8jHRoaWf5G5t0zPr/WkzrzcSk3/sSukfBFcok4mzH2h"
    "r1gfe8qjDmH3puOhI98hEVPoO3v+zeQz7SdIyYBxEzhIdLdLq/4fsG50Pzx2KIjd+jJ4tB"
    "FQJca2STAiq41fA1Vef0HZlOwMXMbwRvTgGvXdj6Svq0lGrelxE+v049L4cxVRI6qIA9Iq"
    "sZUkGkliUk5uGLyKA282gc0gGbhi7N8YzKY6BE1he0WuSaIKSvEtDHqSb4XQva4M3HOCej"
    "ErtJitsYz92AJWRfH2ia/xXf/odX3senO0HxPPhSpLRTKIkGzf9PW6WWD2et3MnbwwqzJi"
    "4G/sZiTE7QlzbBRSsoTBZJGlIuHULww8iJQu5AICQhIPYvdJMqUzkIC06MW4NRHAiWxvj5"
    "VUKMwF5igSHv5o3t+D4Ccx7t/OSfus8639tX2yi0KcX8JlCq/T1K4kwlNYqHWyu09axLLl"
    "hKI6D6MITjnGDwy/lExHtsNI3/QlR+Nm1sdTLRiQUIcR1OmReBN94mAbdMSo9RHq0fk97r"
    "CBAvlvhJ4qIHxCuktRURxpmkh7PHFmgcQp98ki7qBuSWK0Q26yPnzIhIGECdJhj2uk8DSO"
    "8A/EaGEUhc1bxib+TT/BeR1dUhIbPt4FWROF6TgXMs/IaKpAQAxLZxyUWdgztTttEJhBn5"
    "pBZ5o55V5M4gw/qfayqaiXTZT7xXkQpXo6IWxLmBGN8rcYNIX1kRGaKjt6VMbJqQpb5i2H"
    "eD7Ll5pEolT1JLL2JLKBbkqRoIBruSkF9D0+FwIPQ3EOnclQ6sMEaiVFz+dxJVoj9lUd92"
    "qZES8pgaZwLXAeLE6+hV5a26TKWOzNyizjcartU2g8ij42ud0tO7iy6Gs9YZUHl38WOkeK"
    "yLclx6m2yJZcH7rbPK+T2lv7p5iqasfd7eVztQwrbdRwNvKtKn7+XhGTCpsXLW5P+Uj6eK"
    "GltkSg1p/dAx3BO++Cq5RCNSBxmclg4yvJDtoQ/ExpDzkszC4jJl6ZJHeX2GAeo6WSB3Jr"
    "I8EqkeSZjQRjJiXeEFxOixqn2jrfo4MiYsxBvhRzkBJiak31o2uqNTol8A3LbyG4D99/az"
    "PAM5oBcBFPA59/V0xYfit69jLZ9zHuiam3m2uxot6GlN2GYNieUz9IRf5eJFKo0IZEh/lZ"
    "hL5YvS1phR5GkYBbBANuMUuH5JGxOD07B80PJAjEJgkXCsg8rrSLPe4wXEA7uR158BZ6nN"
    "3bUkn/1lffxQuzHBhJUpG/xQ3WqP34dZV+W/ukjz/gpfpAaOJVsND4/jxtSiVUPLYVtLWH"
    "Hll+PuyMhLY99slAOA6eHvDd/u8VCYJMrh+juN4TVXJPVAvrzxieKBvfTQhJtK6p78GdEt"
    "YIt1iHWFxm7QkWiYw5edkdmRGq+n7MFfdjVks0w7OWV+HeNV84ixUrJJ7pZSK6K14toHW1"
    "ZANyje9Wz73xDXPJEIQojo71/o0O/uX2KJhA4x7IQ3NeZuiHH6TG+qBj1RbXfHlmk5Q3m3"
    "8aryJTWYu5tpm5tQxylk5YdFFm1QyVz4IfmCPqS1ke4VKW3Bvo8ife/CvotkH0br55U8Rf"
    "5c2bfH8VzEu4BMOgKoFwUHwL0X1VyBvo1RJvoFcZ3kCCK5Z1rAbN2jl62QVJUilrm4r8Rx"
    "xbbqIxYgm4CMZyzXhSCb4XV7FiBUfPvZh9/z/bxoQ7"
)
