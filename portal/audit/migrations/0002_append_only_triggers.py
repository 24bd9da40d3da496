"""On PostgreSQL the database itself refuses to rewrite the ledger.

UPDATE, DELETE and TRUNCATE on audit_auditevent raise; audit_auditpayload refuses
DELETE and TRUNCATE, and an UPDATE only when it is a redaction (redacted_at set once).
A superuser can still switch triggers off (session_replication_role = replica); the
hash chain is what catches an edit made that way.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit ledger is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_update BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

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

CREATE TRIGGER audit_payload_redact_only BEFORE UPDATE OR DELETE ON audit_auditpayload
    FOR EACH ROW EXECUTE FUNCTION audit_payload_only_redact();
CREATE TRIGGER audit_payload_no_truncate BEFORE TRUNCATE ON audit_auditpayload
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS audit_payload_no_truncate ON audit_auditpayload;
DROP TRIGGER IF EXISTS audit_payload_redact_only ON audit_auditpayload;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_event_no_update ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_payload_only_redact();
DROP FUNCTION IF EXISTS audit_refuse_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(forward, backward, elidable=False)]
