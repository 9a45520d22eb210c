"""The shipped customer list shows stored codes (region, grade, type) by their labels in both languages."""

from pathlib import Path
from typing import Any

from salesmesh.metamodel.packs import apply_import, load_pack
from salesmesh.workflows.records import create_customer
from tests.platform.auth_helpers import login

PACK = Path(__file__).resolve().parents[2] / "packs" / "medical-device-direct"


def test_customer_list_names_codes(client: Any, session: Any, clock: Any, make_user: Any) -> None:
    apply_import(session, None, load_pack(PACK), clock)
    make_user(role="admin", email="admin@example.test")
    create_customer(
        session,
        None,
        name="江苏省人民医院",
        region="jiangsu",
        grade="tertiary_a",
        institution_type="hospital",
        clock=clock,
    )
    session.commit()
    login(client, "admin@example.test")
    zh = client.get("/lists/customer", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "江苏省人民医院" in zh and "江苏" in zh.replace("江苏省人民医院", "") and "三级甲等" in zh
    assert ">jiangsu<" not in zh and ">tertiary_a<" not in zh
    en = client.get("/lists/customer", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Jiangsu" in en and ">tertiary_a<" not in en
