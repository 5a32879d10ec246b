"""The pending MFA challenge's engine in a column of its own (`mfa_engine`), so a login
waiting for its code never renames the stored session's `engine` (SQL for SQLite and
PostgreSQL).

Before, `engine` named the challenge when no session was stored, else the session. Rows that
never held a session (status MISSING) are exact in SQL: their `engine` named the challenge,
or is NULL from before that column (garth's), and moves to `mfa_engine`. Beside a stored or
rejected session `engine` may name either, and the challenge's own marker is sealed: those
challenges keep `mfa_engine` NULL and the status reads the marker instead, until they end
(`mfa.ttl_seconds`); so do challenges that replicas of the previous release store while an
upgrade rolls out. A rejected (EXPIRED) session whose `engine` a later challenge overwrote
keeps naming that challenge's engine.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True


async def upgrade(db: BaseDBAsyncClient) -> str:
    return """
        ALTER TABLE "garmin_authentication_state" ADD "mfa_engine" VARCHAR(16);
        UPDATE "garmin_authentication_state" SET "mfa_engine" = COALESCE("engine", 'garth')
            WHERE "status" = 'MISSING' AND "session_data" IS NULL AND "mfa_state" IS NOT NULL;
        UPDATE "garmin_authentication_state" SET "engine" = NULL
            WHERE "status" = 'MISSING' AND "session_data" IS NULL;"""


async def downgrade(db: BaseDBAsyncClient) -> str:
    return """
        UPDATE "garmin_authentication_state" SET "engine" = "mfa_engine"
            WHERE "session_data" IS NULL AND "mfa_engine" IS NOT NULL;
        ALTER TABLE "garmin_authentication_state" DROP COLUMN "mfa_engine";"""


MODELS_STATE = (
    "eJztXVtz4rgS/isqXk5SlUlNmGQumSeSMBPOya0mZHZrly0jbAHeGJmV5CHU7v730y3b4C"
    "tgcjOMXxIjdcv215bU6m61/q6NXIs5cr9hKvuHraa1Y/J3jdMRg4tU3R6p0fF4XoMFivYc"
    "TUyjVD2pBBRAeZ86kkGRxaQp7LGyXY7U15yRr1SMbE5CRiK90YiK6Wey40kmDNvaIwNNYo"
    "QkULZLbEnUkBFOlSeoQ+7ZdB/vabkm3NTmg+dp3uP2Xx4zlDtgUC3gJr//Xgsawvp0U7U/"
    "/oBym1vsgckUvVRUKEPZI2Z4yvRpx/dG32aOFROCT67LDTUd67ITe9Di6oumxVfvGabreC"
    "M+px9P1dDlMwabK/2QjDNBFcM7KOGhXLjnOIEIQ1H5rzon8V8hwmOxPvUclC5y+w8wL6sZ"
    "xtV127httg2jlpJ8yBGRVlBkuhy/GnhUqQEY4CO8+VSvv3v3of723fuPR4cfPhx9fPsRaP"
    "Xzpqs+/Os/zBwtvymNWetr66qND+TCp+l/s1jwr+ahivpcWlJz9CMSi4vgdEhFtgAiLAkp"
    "wOslpRBivkgMYcFcDvNO9RKCGNEHw2F8oIbw8/3hAoy/N76dnje+7bw/3I0DfRXU1HUVQj"
    "6HOKPnFPrgs/mXd4BNgP4F+8BcIDMkNXgFvvwU41rffzDIlEYGz/z56/8FQA7ptw/b+tHR"
    "CuACVS66ui4Ob2KeTQF9BmBhbTbYae4E7FbAvh9ebOAoswD0duuyedtuXN5g8yMp/3I0Zo"
    "12E2vqunSaKN15n5DPrBHyS6t9TvAn+e36qqnhdKUaCH3HOV37txo+E/WUa3B3YlAriklY"
    "HBblidtxTeoU6VlZvNvXyw4+rdDJDj7l9jGsincxCxRlfCZDMrizJdOYf3FcmjN7ZzEnQO"
    "8j9+bBvgDms+u7k4smufnWPG3dtq6v4v1IV+o1wl+OrTQE35qNiyTqNnyv3GTGiCkmCoKe"
    "5q0wXwFzGBRcYbNiYEeZKpRXQJn+ACwGzBiKQjjH2SqkV0AaJ4aCKM9ZKoRXQJg57Ic/vw"
    "3gloWQTrNWiK+AuKAT40/pZmD939vrq2yoozxJBd82FfmHODBjbpdqj2jEtPpQxdu5bPya"
    "1P5OL65Pkuo6NnCSAL9vC6lAlWMZ8C9eacU5t3CVVROMWtfcmQY9ckNWXcHgsXDR5Y1RLp"
    "bhj0ZFpB7nrKReFqlnrLX106OXon8fsZRjQY+a9xMqLCNV49bdPNp01ag+SpZQDgqdFYCL"
    "jxl4pM6o7UzPGXX0ijblsIpW7y3yWVlIaAznlCv5rUChZ9yiglh0Stw+oQRN/v+RxG8odD"
    "TtkYkNvxg1ocj1hMmABGYaggNntsvqyVpe5q0Kb2Rg10o5qipfVOWLKulw+szG+Hi/yJzM"
    "chf5ccZFc9kGAr9IaYe5KGV0Z+MMI0nuODGjX8trV7L1TTBY1A8OPxx+fPf+cDZGzEoWDQ"
    "1pdxzM2Arul7lQz0U0zlTBmoZVOoyN803W+d9qkq8CNxdc0xUZo+gyaEOuCtgM33xg5IR7"
    "MFnks00zVvCm4e251tToUaWYgHWBPRgWQDiTtwJ5CcgOLC7XxDhgrSBOQzwUPwyHSmVw+A"
    "4zrDK5AKcZK3gzVLLKxlzZmEsoig21NlY25p9R6iW3MfvbBxqeGjKubFN7Ym8V1X7HlMU5"
    "n3hvkf05DF2O8YGKHjIuNUc3uSmmY/hScSsDGohBt4cqQrlFLr80iG6K9F1BXM60MTlteF"
    "6jjQ7v8C4sKJCuSwbCnUioJAyKpmQibMU++/+EJKY7GlPB3kBzbyRTSGcrIl1CiQQNjgki"
    "GHQjqQhH/g534a9mlkDCGVI47sDm+6QbPBoa2WhXP2B31Kc+YF0ydB0LmnemxLTHQyYUe1"
    "Ck53pAplx44MAY2iU7MAVgY+KHbbJ9/fZudzfPcP4Y4/jPYhl/pGZVbpv36wL8zBbvaJdK"
    "o9yGLpRjq0nwbUOg7KKJs/lre7EmO5s3L66vvobkSfU2ERzEYVgrFPw/59gGvBOBye9XCU"
    "xOKiORwOT3GbH/ysswkiG+Te6NNMYt7sfCZjglQu6Xc53VLlu3t62rr7ViiIdsxyS46PDv"
    "jYvW2THR/zq8+etN61sTfgcXHQ4zu3HTvDrzueY/kurBa0rOAMU2c5W9MIY/zrh9/aT+9u"
    "0q22Tevs3fJoN1iUhQUKPGjFv4GCm4T1zXYZTnBITGORN494D1uTrLrORlp4KT6+uL2FRw"
    "0kqO9XeXJ0344rUA5sGKaTvSTHktMvPGmLbh837paRcBLD71xrm2AffnHsQ1Yg9jWzC5ht"
    "kmzf0EppuSSWBzLTVpAx3KCx0zo7Eq4pdMsr3cvu23z9WtntjZAM1zZq5n+0zyVl2ozF1I"
    "O95+UMfWBuuisk5zV9IutbTRqAnycx3LnXDD48rO2K68ROY5bVSSL7PkA8t5gVkywlFNkK"
    "kJElb7a06PMc7KNViWXlQ5hH9GqZfcIXw75eapJ6Qrahke4Ejt3iKXrwQ6w5wTLnXx/jJk"
    "gs13AiE/bg1CX+w9fF/onuWW1M7QyZBp56otieUBD+4bTvt7H9ugdv5y9qAM/S5UdcnV3c"
    "UFGTHKJRlTaNciO9wlWhcN3cm7xzqtnjSHzPIcJog94C58F7rUx6PDtf7ie319ny8BCm8E"
    "VLZaaV8TvkBG3r3o0xZMtVd5cLfAg/va4/Ez+3D1V5+J73IvV8hbZqBrjdN263ur3WreHo"
    "f5PG0mO/y82bhonx+T+Q7O17d66mU4jjWgYRTdRZbF+8iNZJuzjMvYR+bj4ZkmzCFrKHoZ"
    "7NXCuDzKXVqnj83TBYWd5K0kXWZJo0ru9vvrWb1SzJWsyyxrfDVmejBtM6NPbccTWRnUch"
    "XtPPbKEJY0hOn5jgnhZuwUzte241zb59h+sniZEtkh/uv2ajlGCKzaW2qB+DOgWinhifA4"
    "2XEFkff2eAyLe/i9GzMZwLU2IywONH9cU8sjs2OWAMy/v0d+D6P4qvz6VU6TyjpQWQde2z"
    "oAdx8MWM78vFweEfZSi+T29Lx5dneBEcehxdfq8MvG1V3j4pjA1Ob56bVfXyAbGCMejdQu"
    "IJNZtHdw0eHf7q6udElw0eG3d6enzVvoR8FFh39ptLQY/f8d3rhrnxuzcPLoL2gPVhvGRe"
    "uy1ca66C9o+X+tmxssDi7KIf3KdZwP/WY6EVdxHetE/2tJPc5ZmR3KbHbo29yWw7XEnGCt"
    "5FxmOduKjaTRZwoVjSIO3CRfZVBKGpR8iLyxxM3UxbGNMlbgZoMbGEIKYxvhq6BNQlvYBl"
    "qZP4ttF5y44j5vFZuN8Jxj+yA+qH9cZWFS/5i/MsG6hDGfUYnmzvusPEeLDJQJxi3K3/UC"
    "tsqS2PjvYOK8QDnWMqz888q9RXZ+bSd1ZnRLLf2nwpXyjWBjxzYpGTPxBlsgI0951CHswX"
    "Q8DOQ7Ju4Evp09ojfnTXWcICV9xk2QINGfXdr0/4RtY/jhqUNB7bZIb6p9BFS5I9skmJHV"
    "xreBJu9uUDclO33BGHGF3yCzdj+Trm4mmbWmw01s089L449VRA2pIg5oq8RWkmgkiUk56T"
    "F4FAeebAyLQdIX7sg/MZhNdAqalf0VuS6JMhjFtzDpSb4XQn91ReCeMVST2UqT2RrT2OMm"
    "sDKqty98jO/6W6+rbdebY/0YewKaLJTJIMKyfcPXu/oKo9e7eu7ghVWlUQN/Yb2h696fMc"
    "dGJSVLGUySLFQJJz4xyCBCvVIICChJPMjdJ8mETkED0qoX49bYBUlkR3ss5UJlLnBHkXDz"
    "R/3hARQ/iXn/ds6aF63vzW/Ns11U4nwKwRQep6lDSVxPIVHjbHefNIhlyzFFcx5mEZxwzB"
    "8YvimZDG2Hka7pa45Gb9rFXS2YkFCnEdTlkXwTXeLgPeiQUesztKPrO9xhfQX63xAjVUD5"
    "hHJB0VAcuTWR9mjsTAONU+6Ted5BfSeJ2Q65ybrwImMGGiZohx2ukcLdOK6/IUYro6hs3j"
    "M29k/6CfbraEpJbHh5AbomKtNxKWTukdFcgYIYUmdslJn7M3U4bZCYQe+awWCaGedeTOMM"
    "X6mKsilplE1U+qvLIMr1ckrYlggjmuVv3mlWtkdGeMoc6FGaIKcyLJm3HOLZKF9oEIlyVY"
    "PI2oPIBoYpRZICrhWmFPB3+EwJPA7VOQwmQ60PC6iVVD1fJ5RojdxXVd6rRU68pAaawnWF"
    "/WBx9i2M0tomU8Z8bVZkGo9zbZ9B41nsscnlbtHOlcVf2QnL3Ln8vdA5WkS+LznOtUW+5G"
    "rT3eZFnVTR2j/FUFUF7m6vnMvlWGmihbOW71Xx6/dWcamwGenq/pTPpIsHWmpPBFr92QPw"
    "ETzzLjhKKTQDEsFMBgtfSXbQh+BXSnvAYWIWjJh4ZJLcXeCDeY47FdyQWzkJlqkkr+wkGD"
    "Ep8YTgYlbUONfWxR4drqLGHOZrMYcpJaayVD+7pVqjUwDfkH4LwX3677dyA7yiGwAn8TTw"
    "+WfFhPRb8WUv0n2f45yYarm5liiqZUjRZQim7Tn3k1Tkr0UiRCstSHSan3nqi+XLkkYYYR"
    "RJuEUw4RazdEoeGcvTs3NY/0SCRGyScFcBm8eVDrHHFYYAtJPLkSe/Q4ezB1sq6Z/66od4"
    "YZUDPUkq8qfbwxZ1HL9u0r/XPuniBTxUFxhNPAoWbr4/K5tQCQ2PbAX32sOILL8eVkau9j"
    "12Sd91HNw94If9PygSJJlcP0dxtSYq5ZqoUtZfMT1RNr6bkJJoXVffkwclrJFusUqxuMjb"
    "E0wSGWPyojMyI1zV+ZhLzscsl2qGey1vw7VrvnIWI1tJPdPTRHRVvFxBa2vNBvQaP6yee6"
    "MeE2QAShTHwHr/RAf/cHtUTODmHuhDM1lm2IefpMVqo2PZJtd8fWaTjDebvxuvJENZgwnb"
    "zFxaBjULByw6p1k2QuWL4BFjRHUoyzMcypJ7Al3+wJt/BN02qN71o6NV4lWOjvLjVbAuER"
    "IMnaoAwgH5FqJ7sFI00MGCaKCDjGgglyuWta0G3do5dtk5S9Ioa5uK/EMcW26iM2IBuAjG"
    "Yst40gi+FzexYgMnrz2Z/ft/WkhdSA=="
)
