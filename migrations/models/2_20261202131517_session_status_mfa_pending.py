"""SessionStatus names MFA_PENDING (derived, never stored): the status column's comment lists it
(PostgreSQL; the column itself is unchanged)."""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect != "postgres":
        return ""  # SQLite keeps no column comments: the schema is unchanged
    return """
        COMMENT ON COLUMN "garmin_authentication_state"."status" IS 'MISSING: MISSING\nVALID: VALID\nEXPIRED: EXPIRED\nMFA_PENDING: MFA_PENDING';"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    if db.capabilities.dialect != "postgres":
        return ""
    return """
        COMMENT ON COLUMN "garmin_authentication_state"."status" IS 'MISSING: MISSING\nVALID: VALID\nEXPIRED: EXPIRED';"""


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
    "vdbqvzpVbMAqHaEQo+9NnXRrt1eoT0vz5rfrtsXTXhe/Chz2DmMS6bnVNfa/YlOX0tteV5"
    "f5ktz0k3J7LleT/jVAFgb4DjlbkKnLvHPK64Dv0mcYxje3uZYxzb2/nHOFReYqciTPMOYZ"
    "aqRgruY85tglnOhsW4ZgLvW1B9rs4yTXnZoer44qIdG6qOW8mx6Pr8uAktXhtgtpkuzXNM"
    "nasiM0NMaR2a90tPCwpA8uhQWEatsNxNa/+CJe8bski5V7hpYkPZSxHaY0cWieck1V7uvO"
    "t2qZcSkb0cnDFirsYZJXWrLlTmLqQDFvfYpproK2rrtHZl7VJbW5FBYD9uW/yBGR6TNOOY"
    "5wKb55RRWb7Mlg8YxwKzZESjmiBTEySsQlecHmOaVUilLL2oCqT9jlYveSCtO2HmiSdcLm"
    "oZkbNI7ta8UJkLcoY5E1wYGvtzRASZnaBQ+upIhYph3UH7UmEtZrk6iPQwIjooRV1keaCj"
    "zlum42RPLVAHzRh5lIZ+FyxvUOe63UZjgpmLHAzlWmiDcaR90TAMt3mkryNzzRGxPJsIRI"
    "eMQ7vQqT4efab9Fz9a5sfKEEh4Y5CicqnzIOoFMu4ri9a24BVlVeRrDSJfrz0eP3PsS7f6"
    "THwXR19C3TIDXWuc9FpfW71Ws3sU3oNIidtnZ81Gu3d2hGYn314/pKKX4WqsAQ+j6OmbLN"
    "0nHsB5O8u4jPM3Ph6eacIcsoKjl6FeLYzL49ylffrYPF3Q2EndytJltrRyyflgsBrrlVKu"
    "bF1mW6tXI6YH0zYxBpjansi6eSrX0c5Tr4iwJBGm5zsiBM84YZnvbce11iHQ/Uz7OErEQ/"
    "zBb2s5JITK2lrIQPwTSC11UYTwGNrgArl31HFgcQ/fN2OUAXzWNML8DbpPK2rxjtYYE6Du"
    "Ld9C38PdZdW95NVdEBU7ULEDr80OwNOHQ5IzPy+2R0S91Cbpnpw1T6/baidsyPhafXbe6F"
    "w32kcIpjbPv5b49Q3yBvcuR3cQF7DJdBdy8KHPrq47HZ0SfOiz7vXJSbML/Sj40GefGy1t"
    "Rv9/nzWue2fGdJtz9BuUB6sNo906b/VUXvQblPzf1uWlSg4+lMP6Veg4H/q3GURcJnSsL0"
    "hfyepxzYp2KDPtMKCMuqOVzJxQrexcZjtTScauMSBSORpFArhJvYpQShJKPkSe46pDqMWx"
    "jSpW4GaDGxAhhbGN6FXQJqEtzIFW9GexY2wPXNzlrWKzEZ5prB/EO/XDZRYm9cP8lYnKS5"
    "D5BLuK7rzLuh9mHkGZUFyje49egKssCcd/DRNnW9mxlsHyzzK35vH8mie1p3ILmf4TwV33"
    "nSCOTU2MHCLeqRLQ2JMethF5NG1PbeQ7QvwB2s4W0ofzJnqfIEYDwkywINLNLk39/8Ky1f"
    "bDExuD222h24mOEWDJx9RE6iZLqt4Giry+VL4p2hgIQhAXfoHE2vyEbnQxyds++sxUZfr3"
    "efhjFZIjLJEN3iqi0kUaSWRihm4JVMWGmjmwGEQDwcf+L62SB311x9LxityQRBlI8TW8LC"
    "I/CqFbXRG4pwrVZLbUZLbCNPa0CayM7u0L//zp6kevq2PXb4f9cDwBRRb65dWIyvoNX7v1"
    "JUav3Xru4KWySuMGNoigZuZPgwQ5cx1APJNZ5Pzlg11dJFau4xS5Z0fz+3v+4dFSBY1X5T"
    "ee49eWVacqgHAgvobo7izFHu3MYY920uwRPFESluGW5N86HFGpLh0ueOnwq05mP/8Pm/vA"
    "MA=="
)
