"""The deadline of GDPR Art. 12(3): one month from receipt, extendable by two more.

Months are counted as Regulation 1182/71 (periods, dates and time limits) counts them,
which the Court and the EDPB apply to the GDPR: a period of months ends on the day of
the last month that has the same date as the day of receipt, or, where that month has
no such date, on its last day (31 January -> 28 or 29 February). python-dateutil's
`relativedelta` clamps to the end of the month in exactly that way.
"""

from datetime import date

from dateutil.relativedelta import relativedelta

from datasubjects.choices import MAX_EXTENSION_MONTHS


def dsar_due_date(*, received_on: date, extension_months: int = 0) -> date:
    """The last day to answer a request received on `received_on`.

    An extension counts from receipt, not from the first deadline, so a request received
    on 31 January and extended by two months is due on 30 April (three months from
    receipt), not 28 April (two months from 28 February).
    """
    if not 0 <= extension_months <= MAX_EXTENSION_MONTHS:
        raise ValueError(f"an extension is 0 to {MAX_EXTENSION_MONTHS} months")
    return received_on + relativedelta(months=1 + extension_months)
