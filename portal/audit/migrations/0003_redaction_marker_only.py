"""On PostgreSQL a payload UPDATE is a redaction only when it writes the marker.

Before, any UPDATE that set `redacted_at` once passed, so a role with table rights
could overwrite a payload with anything. Now the new row must hold exactly the
redaction marker (`{"redacted": true}`) and no client IP, and nothing else about the
row may change. Verification still checks each redaction against the event that made
it; this keeps the forged data itself out of the table.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_payload_only_redact() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL
       AND NEW.event_id = OLD.event_id
       AND NEW.data = '{"redacted": true}'::jsonb
       AND NEW.client_ip IS NULL THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit payloads may only be redacted: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

BACKWARD = r"""
CREATE OR REPLACE FUNCTION audit_payload_only_redact() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.redacted_at IS NULL AND NEW.redacted_at IS NOT NULL
       AND NEW.event_id = OLD.event_id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit payloads may only be redacted: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_triggers")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
