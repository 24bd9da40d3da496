"""The sample CRM database the demo and the tests build from the lake's customers:
a real SQL database (SQLite file, or PostgreSQL) that the `sql` connector reads.

Contacts carry the customer's id, address, name and a phone number; interactions are
the notes a service agent took. Both exist for every fifth customer and for the first
ten, so the demo's customer-1 is present in every source.
"""

import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

CONTACTS = (
    "CREATE TABLE crm_contacts (customer_id TEXT PRIMARY KEY, email TEXT NOT NULL, "
    "name TEXT, phone TEXT, opted_in_marketing BOOLEAN)"
)
INTERACTIONS = (
    "CREATE TABLE crm_interactions (interaction_id INTEGER PRIMARY KEY, "
    "customer_id TEXT NOT NULL, channel TEXT, note TEXT)"
)
SAMPLE_CRM_CONFIG = {
    "tables": {"crm_contacts": "email", "crm_interactions": "customer_id"},
    "person_table": "crm_contacts",
    "email_column": "email",
    "customer_id_column": "customer_id",
}


def _rows(customers: "pd.DataFrame") -> tuple[list[tuple], list[tuple]]:
    picked = customers.iloc[[i for i in range(len(customers)) if i < 10 or i % 5 == 0]]
    contacts = [
        (row.customer_id, row.email, row.name, f"+44 20 7946 {n:04d}", bool(row.consent_marketing))
        for n, row in enumerate(picked.itertuples(index=False))
    ]
    interactions = []
    for n, row in enumerate(picked.itertuples(index=False)):
        interactions.append((2 * n + 1, row.customer_id, "phone", "Asked about a delivery"))
        interactions.append((2 * n + 2, row.customer_id, "e-mail", "Complained about a price"))
    return contacts, interactions


def sample_crm_create(*, url: str, customers: "pd.DataFrame") -> dict[str, Any]:
    """Create (or recreate) the CRM tables at `url` and fill them; returns the data
    source config for it. The PostgreSQL database must exist already."""
    contacts, interactions = _rows(customers)
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
        with sqlite3.connect(path) as connection:
            connection.execute("DROP TABLE IF EXISTS crm_contacts")
            connection.execute("DROP TABLE IF EXISTS crm_interactions")
            connection.execute(CONTACTS)
            connection.execute(INTERACTIONS)
            connection.executemany("INSERT INTO crm_contacts VALUES (?, ?, ?, ?, ?)", contacts)
            connection.executemany("INSERT INTO crm_interactions VALUES (?, ?, ?, ?)", interactions)
        connection.close()
    else:
        import psycopg  # noqa: PLC0415 -- slow

        with psycopg.connect(url) as connection, connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS crm_contacts, crm_interactions")
            cursor.execute(CONTACTS)
            cursor.execute(INTERACTIONS)
            cursor.executemany("INSERT INTO crm_contacts VALUES (%s, %s, %s, %s, %s)", contacts)
            cursor.executemany("INSERT INTO crm_interactions VALUES (%s, %s, %s, %s)", interactions)
    return {"url": url, **SAMPLE_CRM_CONFIG}
