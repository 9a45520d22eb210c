"""The database itself allows at most one draft and one published version per definition."""

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from salesmesh.metamodel.models import Definition, DefinitionVersion
from salesmesh.platform.clock import FrozenClock


def _version(definition: Definition, number: int, status: str, clock: FrozenClock) -> DefinitionVersion:
    doc = {"kind": "calendar", "key": "c", "schema_version": 1}
    return DefinitionVersion(
        definition=definition,
        number=number,
        status=status,
        document=doc,
        checksum="x" * 64,
        schema_version=1,
        created_at=clock.now(),
        updated_at=clock.now(),
    )


@pytest.mark.parametrize("status", ["draft", "published"])
def test_second_open_version_is_refused(session: Session, clock: FrozenClock, status: str) -> None:
    definition = Definition(kind="calendar", key="c", created_at=clock.now())
    session.add_all(
        [definition, _version(definition, 1, status, clock), _version(definition, 2, "archived", clock)]
    )
    session.flush()
    session.add(_version(definition, 3, status, clock))
    with pytest.raises(IntegrityError):
        session.flush()


def test_one_draft_and_one_published_coexist(session: Session, clock: FrozenClock) -> None:
    definition = Definition(kind="calendar", key="c", created_at=clock.now())
    session.add_all(
        [definition, _version(definition, 1, "published", clock), _version(definition, 2, "draft", clock)]
    )
    session.flush()
    assert len(definition.versions) == 2
