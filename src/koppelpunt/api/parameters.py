"""The grammar of the API's parameters, declared once for the OpenAPI document and validation.

FastAPI checks a declared `pattern` before the route runs (400 problem+json), so what the
document says a parameter may hold is exactly what the service accepts: a client generating
requests from the document (schemathesis does, tests/api/test_schemathesis.py) gets no
refusal of a value the document allows, and no value the document forbids is taken.

The patterns are ECMAScript-compatible (OpenAPI's regular-expression dialect) and anchored.
"""

from __future__ import annotations

# A CBS gemeentecode: GM and four ASCII digits, in either case (the topics use lower case).
GEMEENTECODE = r"^[Gg][Mm][0-9]{4}$"

# A BSN as the inzage takes it: nine ASCII digits. The elfproef is checked after it (400):
# no regular expression of reasonable size expresses it.
BSN = r"^[0-9]{9}$"

# Dates and moments in the years 1900-2999 (app/moments.py: no message is older or
# newer, and near datetime's ends the conversion to UTC overflows). Written out so that every
# string the pattern allows is a real day: months of 30 and 31 days, 29 February only in leap
# years (every fourth year, not 1900, 2100, 2200, 2300, 2500, 2600, 2700 and 2900).
_YEAR = r"(?:19[0-9]{2}|2[0-9]{3})"
_LEAP_YEAR = r"(?:(?:19|2[0-9])(?:0[48]|[2468][048]|[13579][26])|2000|2400|2800)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
_OFFSET = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"

# A date (midnight) or a date and time, with or without an offset; without one it is
# Europe/Amsterdam time. The CLI reads any ISO 8601 form Python reads (app/moments.py);
# the API only this one, so that its document can say exactly which strings it takes.
MOMENT = rf"^{_DATE}(?:{_TIME}{_OFFSET}?)?$"
MOMENT_DESCRIPTION = (
    "date (2027-03-01, midnight) or date and time (2027-03-01T09:00, 2027-03-01T09:00:00Z, "
    "2027-03-01T09:00+01:00) in the years 1900-2999; without an offset it is Amsterdam time"
)

# Ids the service makes: replays (uuid4) and signaleringen (uuid5), as str(uuid) writes them.
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# A rejection: a message's id (12) or a record's (R34), a positive 64-bit integer at most
# (19 digits); a possible id that does not exist is 404.
AFWIJZING_ID = r"^R?[0-9]{1,19}$"

# A sender's own id (berichtId: the schemas' Token64, 1-64 characters without control ones).
TOKEN64 = r"^[^\x00-\x1f\x7f]{1,64}$"

# A schooljaar (verslagperiode) as 2026-2027; that the second year follows the first is checked
# after it (422): a pattern cannot compare the two numbers.
SCHOOLJAAR = r"^(?:19[0-9]{2}|2[0-9]{3})-(?:19[0-9]{2}|2[0-9]{3})$"
