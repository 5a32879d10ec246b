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
    "eJztXetz2rgW/1c0fLnJTJppadJH+okktOHePDoN6e7ssmOELcAbI7OWXMLs7v9+z5Ft8BNs"
    "2iSG6ktipHNk+3cs6bwk/d2YuBZzxGHLlPY3W84bJ+TvBqcTBheZugPSoNPpsgYLJB04ipjG"
    "qQZCelAA5UPqCAZFFhOmZ0+l7XKkvuGMfKLexOYkYiTCn0yoN/9A9nzBPMO2DshIkRgRCZTt"
    "E1sQOWaEU+l71CH3bH6I97RcE25q89HjNO9z+y+fGdIdMaj24Ca//94IG8L6bFONP/6Acptb"
    "7IGJDL2Q1JOGtCfM8KUZ0E7vjaHNHCshhIBclRtyPlVlp/aow+VHRYuvPjBM1/EnfEk/ncux"
    "yxcMNpfqIRlnHpUM7yA9H+XCfccJRRiJKnjVJUnwCjEeiw2p76B0kTt4gGVZwzCub7rGbbtr"
    "GI2M5COOmLTCItPl+NXAowoFwAgf4cX7ZvP167fNl6/fvDs+evv2+N3Ld0Crnjdb9fbf4GGW"
    "aAVNKcw6nzrXXXwgFz7N4JvFgn8VD5U04FKSWqIfk1hSBGdj6uULIMaSkgK8XloKEearxBAV"
    "LOWw7FRPIYgJfTAcxkdyDD/fHK3A+Gvry9lF68vem6P9JNDXYU1TVSHkS4hzek6lDz6ff30H"
    "2Abon7APLAWyQFKBV+HLzzBu9P2Hg0xtZPDIn7/6XwHkiH73sG0eH5cAF6gK0VV1SXhT82wG"
    "6HMAC2vzwc5yp2C3QvbD6GILR5kVoHc7V+3bbuvqMzY/EeIvR2HW6raxpqlK56nSvTcp+Swa"
    "Ib90uhcEf5Lfbq7bCk5XyJGn7rik6/7WwGeivnQN7s4MasUxiYqjoiJxO65JnSo9K49393rZ"
    "q/clOtmr94V9DKuSXcwCRRmfyRAM7myJLOYfHZcWzN55zCnQh8i9fbCvgPn85u70sk0+f2mf"
    "dW47N9fJfqQqlY3wl2NLBcGXdusyjboN3ys3mTFhknkVQc/yasxLYA6DguvZrBrYcSaNcgmU"
    "6TfAYsSMsVcJ5ySbRroE0jgxVER5yaIRLoEwc9i3YH4bwS0rIZ1l1YiXQNyjM+NP4eZg/d/b"
    "m+t8qOM8aQXfNiX5hzgwY+6Wao9oJLT6SMXbu2r9mtb+zi5vTtPqOjZwmgJ/aHtCgirHcuBf"
    "bWklOXfQymp4jFo33JmHPXJLrK5w8FhpdPlTlItlBKNRFaknObXU6yL1HFtbPT1GKYb3MU85"
    "FgyoeT+jnmVkatymW0SbrZo0J+kSykGhs0Jw8THDiNQ5tZ35BaOOsmgzAat49cGqmJWFhMZ4"
    "SVkqbgUKPeMW9YhF58QdEkrQ5f8fQYKGokDTAZnZ8ItRE4pc3zMZkMBMQ3DgzA9Z/bCW10Wr"
    "ohsZ2LUygSodi9KxqJoOp4/sjE/2i9zJrNDITzKumsu2EPhVSjvMRRmnO5vmOEkKx4kF/UZR"
    "u5rZN+Fg0Xx19Pbo3es3R4sxYlGyamjIhuNgxpZwv1xDvRDRJJOGNQurcBibFrusi7/VNJ8G"
    "txBc0/VyRtF10EZcGtic2Hzo5IR7MFHls80yaniz8A5ca24MqJTMA7vAHo0rIJzLq0FeA7ID"
    "xuWGGIesGuIsxGPvm+FQIQ0O32GOV6YQ4CyjhjdHJdM+Zu1jrqEottTbqH3MP6PUa+5jDpYP"
    "tHw5ZlzaporE3kqq4o4Zj3Mx8cEq/3OUupzgAxU9Ylzrjm5z05tP4UvFpQzoIAbdHqoI5Ra5"
    "+tgiqikydD3icqacyVnH8wZt9HiP98GgQLo+GXnuTEAlYVA0JzPPluxD8M8TxHQnU+qxF9Dc"
    "C8Ek0tmSCJdQIkCDYx7xGHQjIQlH/h534a9iFkDCGVI47sjmh6QfPho62WhfPWB/MqQBYH0y"
    "dh0LmnfmxLSnY+ZJ9iDJwPWBTLrwwKEztE/2YArAxrxvtskO1du7/f0ix/n3OMd/Fs/4d2pW"
    "9fZ5Py/Aj+zxjnepLMpd6EIFvpoU3y4kyq6aONu/dldrsot58/Lm+lNEnlZvM7np0s9x4uC3"
    "3eb+RCHf4UGuZo7TPOJ+utBO46pze9u5/tSoJoGI7YSEFz3+tXXZOT8h6l+Pt3/93PnSht/h"
    "RY/DzGN8bl+fB1zLH+npq1TK85syKc9pNSeW8vwmZ1UBYG+A4pVrBa7MMU8y7kK/SS3jePmy"
    "zDKOly+Ll3FgXSpTEab5KeMWPkYG7lPXdRjlBQmLSc4U3gNgfazOsih52qHq9ObmMjFUnXbS"
    "Y9Hd1WkbvnglgGUyXdbPsVCuqswMCaZd+LyfelpAANnD1AYzagNzN8v9A0zeLZJIvS3crGMD"
    "5YUO7clUVonnpNmebr3ry1qbErFcDpdzZm7mM0rz6i5U5y6kAhbfqGMrR19VWWe5tbRrLW10"
    "BoH8XMdyZ9zwubRzlnmukXlBG1rydZZ86HGsMEvGOPQEmZkgwQrdcHpMcOqQSl16kQ6k/YxS"
    "r3kg7XbOzTPfE67XyImcxWoPVoXKBNAZ5pJwbWjslzHz2HIFBfLjkgqMYd3D94VhLW4JFUSa"
    "jZkKStmCWD7w4HrLbJzsextUQTPOHqSh3oXKPrm+u7wkE0a5IFMK7Vpkj7tE6aJRGG7/RG1H"
    "Jswxs3yHecQecRe+C1Ua4NHjSn8JomVBrIwAhT8BKluWWg+CL5CzX1n8aStuUaYjXzsQ+Xru"
    "8fiRY1/qq8/Fd330JeKtM9CN1lm387XT7bRvT6J9EG0mevyi3brsXpyQ5cq35w+pKDMcxxrQ"
    "MKquvsnj/c4FONtjxuWsvwnw8E0T5pANFL0cdm0Y10e5y+r0iXm6orDTvFrSdZY0quTucLiZ"
    "1yvDrGVdZ1njqzHTh2mbGUNqO76Xt/NUoaJdxK4dYWlHmJrvmOe5OSssi7XtJNcuBLofKY+j"
    "Rn6I/7qDRoETAqsO1nog/gypSm0U4fmc7LkeEff2dArGPfzeT7gM4Fq5EVYn6H5fU+szWhOe"
    "ANy3/ID8HmWX6X3J9V4Q2jugvQPP7R2Au49GrGB+Xi+PGHutRXJ7dtE+v7vETNjI42v1+FXr"
    "+q51eUJgavODbYmfXyBbmLsczyCuIJNFFnJ40eNf7q6vVUl40eO3d2dn7VvoR+FFj39sdZQY"
    "g/893rrrXhiLNOf4L2gPrA3jsnPV6WJd/Be0/L/O589YHF7UQ/o6dFwM/XYGEcuEjtUG6RtJ"
    "Pcmp3Q51djsMbW6L8UZiTrFqOddZzrZkE2EMmURFo0oAN82nHUpph1IAkT8VuAi1OrZxRg1u"
    "PrihI6QytjE+DW0a2so+UO3+rLaMbeZ690VWbD7CS47dg/hV810Zw6T5rtgywbqUM59Rge7O"
    "+7z9YVY5KFOMO7Tv0RP4Kmvi47+DifMS5djI8fIvKw9W+fmVn9RZ0K319J95rhAvPDZ1bJOS"
    "KfNeYAtk4kufOoQ9mI6PiXwnxJ3Bt3NA1OK8ucoTpGTIuAkSJOqzy7r+f2DbmH545lBQuy0y"
    "mKsYAZXuxDYJ7mRp49tAk3efUTcle0OPMeJ6QYPM2v9A+qqZ9G4fPW5im8F+HsFYReSYSuKA"
    "tkpsKYhCkpiUkwGDR3HgyaZgDJKh506Ck1bZTG3dUTpeURiSqINTfAc3iyiOQqivrgrcCwY9"
    "mZWazDaYxr5vAqujevvEx59uvvRaL7veHu/H1PegyUonr8ZYdm/4et0sMXq9bhYOXlhVGzXw"
    "FzYYu+79OXNsVFLylME0yUqVcBYQgwxi1KVSQEBJ4uGeZ4LM6Bw0IKV6MW5NXZBEfrbHWi5U"
    "5sJwFIkWfzQfHkDxE7hf2t55+7Lztf2lfb6PSlxA4TGJxxCqVBLXl0jUOt8/JC1i2WJK0Z2H"
    "u6/NOO67Fr0pmY1th5G+GWiOxmDex1UtuJGb2n5Nlcf2m+gTB+9Bx4xaH6AdVd/jDhtK0P/G"
    "mKkCyieUexQdxbFbE2FPps481DjFIVnu16buJHCXOG6yPrzIlIGGCdphjyukcDWOGyyIUcoo"
    "Kpv3jE2DE1LC9TqKUhAbXt4DXROV6aQUctfIKK5QQYyocxbKLOOZKp023JhBrZrBZJoF50FC"
    "44xeSWfZ1DTLJi798jKIc+lj6DfXw2KdprQ/MsZT50SP2iQ51cFk3nGIF6N8pUEkzqUHkY0H"
    "kS1MU4ptVrdRmlLI3+MLJfAkUucwmQy1PiygVlr1fJ5Uog32vtL7Xq0K4qU10AyuJdaDJdl3"
    "MEtrl1wZS9usyjSe5No9h8aj+GPT5m7VzpXHr/2Ede5cwVroAi2iOJac5NqhWLJedLd9WSc6"
    "W/unGKp04u7uyrlegZU2ejgbxVGVoP6gTEiFLUjLx1M+kD4eBKgiEej1Zw/Apw4/D4+gidyA"
    "xGMmA8NXkD2MIQSVwh5xmJg9Rkw8akbsr4jBPMadKi7I1UGCdSrJMwcJJkwIPFm1mhc1ybVz"
    "uUdHZdSYo2It5iijxGhP9aN7qhU6FfCN6HcQ3B///eowwDOGAXASzwJffIZJRL8TX/Yq3fcx"
    "zi/R5uZGotBmSFUzBLftuQg2qSi2RWJEpQwStc3PcuuL9WZJK8owim24RXDDLWapLXlEYp+e"
    "vaPmexJuxCYIdyWw+VyqFHu0MLzgUPOEOfLD79Dj7MEWUgSnZQYpXljlQE8SkvzpDrBFlcev"
    "mgzudUj6eAEP1QdGE4/QhJsfLspmVEDDE1vCvQ4wIyuoB8vIVbHHPhm6joOrB4K0/wdJwk0m"
    "N9+jWNtEtbSJtLL+jNsT5eO7DVsSbRrq++FJCRtst6i3WFwV7QkniZwxedXZjTEufW7jmnMb"
    "66Wa4VrL28h2LVbOEmSl1DM1TcSt4vUKWldpNqDXBGn13J8MmEdGoERxTKwPTnQIDgVHxQRu"
    "7oM+tJBljn/4h7SoFzrWbXIt1me2yXmz/avxajKUtZhnm7mmZVizcsCiS5p1I1SxCL5jjNCH"
    "sjzCoSyFJ9AVD7zFR9DtgurdPD4uk69yfFycr4J1qZRg6FQVEA7JdxDdV6WygV6tyAZ6lZMN"
    "5HLJ8pbVYFi7wC+7ZEk7ZW1Tkn+IY4ttDEasABfBWO0ZTzvBD5IuVmzg9Lkns3//D5B3erM="
)
