"""The webhook's write path through the ORM alone, for bench/write_path.py: importing this module
replaces attempts.rows' insert, update and get_for_update, and attempts.rollups' upserts, with
their idiomatic ORM equivalents, keeping what they promise (an event stored once, every count
exact under concurrency, the rollups' rows locked in one fixed order). Never imported by the app.

What the ORM cannot say in one statement costs more:
- "insert unless taken": bulk_create(ignore_conflicts=True) neither sets the primary key nor
  tells whether the row went in, and a re-read cannot tell our row from a concurrent writer's,
  so this is get_or_create()'s form: save(force_insert=True) in a savepoint, IntegrityError
  meaning taken (two statements more, SAVEPOINT and RELEASE).
- "add n to a counter": bulk_create(update_conflicts=True) sets count = EXCLUDED.count and
  cannot add, so an UPDATE with F("count") + n; where it finds no row, the row is inserted at 0
  unless taken (ON CONFLICT DO NOTHING waits for a concurrent inserter) and the UPDATE runs
  again: one statement a counter that exists, three for a new one, none of them chained.
"""

from collections.abc import Iterable

from django.db import IntegrityError, models, transaction
from django.db.models import F

from attempts import rollups, rows


def insert(obj: models.Model, unless_taken: str | None = None) -> bool:
    if unless_taken is None:
        obj.save(force_insert=True)
        return True
    try:
        with transaction.atomic():
            obj.save(force_insert=True)
    except IntegrityError:
        # Only the row holding obj's value counts as taken: any other failure is not ours to hide.
        value = getattr(obj, unless_taken)
        if not type(obj).objects.filter(**{unless_taken: value}).exists():
            raise
        return False
    return True


def update(obj: models.Model, names: Iterable[str]) -> None:
    obj.save(update_fields=list(dict.fromkeys(names)))


def get_for_update(model: type[models.Model], field: str, value: object) -> models.Model | None:
    return model.objects.select_for_update().filter(**{field: value}).first()


def add_counts(upserts: list[rollups.Upsert]) -> None:
    """Adds each row's n to its counter, in the order given (the one order of every writer)."""
    for model, key, key_rows in upserts:
        for *values, n in key_rows:
            counter = model.objects.filter(**dict(zip(key, values, strict=True)))
            if counter.update(count=F("count") + n):
                continue
            model.objects.bulk_create(
                [model(**dict(zip(key, values, strict=True)), count=0)], ignore_conflicts=True
            )
            counter.update(count=F("count") + n)


rows.insert = insert
rows.update = update
rows.get_for_update = get_for_update
rollups._run = add_counts
