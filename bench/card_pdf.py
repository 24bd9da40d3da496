"""Time to export one model card as PDF, by the number of slice rows in its
performance table.

    python bench/card_pdf.py [--rows 100 1000 3000 12000]

Uses its own SQLite database in a temporary directory (migrated, then the three
models), registers one demand-forecasting version per size with that many slice rows
(stores x the three metrics), writes each card's PDF once and prints rows, seconds,
pages and bytes. The figures are this machine's; the export bound
(CARD_PDF_SYNC_MAX_ROWS) is chosen from them.
"""

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100, 1000, 3000, 12000])
    args = parser.parse_args()
    var = tempfile.mkdtemp(prefix="portal-bench-pdf-")
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            "PORTAL_VAR_DIR": var,
            "DATABASE_URL": f"sqlite:///{var}/bench.sqlite3",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from pypdf import PdfReader

    from governance.models import ModelVersion
    from governance.selectors.card_exports import card_export_pdf
    from governance.services.registry import version_register
    from portal.audit.actors import Actor

    call_command("migrate", verbosity=0)
    print(f"{'rows':>7} {'seconds':>8} {'pages':>6} {'bytes':>10}")
    for n, rows in enumerate(args.rows):
        stores = max(1, rows // 3)
        slices = {
            "store": {
                f"s{i:05d}": {"mae": 300 + i % 97, "mape": 0.1 + (i % 13) / 100, "rmse": 420.5}
                for i in range(stores)
            }
        }
        created, _ = version_register(
            model_slug="demand-forecasting",
            data={
                "version": f"1.{n}.0",
                "artifact_uri": f"gs://zm-models/demand-forecasting/1.{n}.0/model",
                "image_uri": "europe-west1-docker.pkg.dev/zm-ml/serving/demand-forecasting",
                "image_digest": "sha256:" + "ab" * 32,
                "data_version": f"bq-snapshot-{n}",
                "code_version": "c" * 40,
                "metrics": {"mae": 350.5, "mape": 0.121, "rmse": 480.2},
                "metric_slices": slices,
            },
            actor=Actor.system("bench"),
        )
        card = ModelVersion.objects.get(pk=created.pk).card
        started = time.perf_counter()
        pdf = card_export_pdf(card=card)
        seconds = time.perf_counter() - started
        pages = len(PdfReader(io.BytesIO(pdf)).pages)
        print(f"{stores * 3:>7} {seconds:>8.2f} {pages:>6} {len(pdf):>10}", flush=True)


if __name__ == "__main__":
    main()
