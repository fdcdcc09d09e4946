"""The stamp kinds 2..4 on the programme form (issue 18): add and edit kinds, the
model's errors at the kind's own inputs, nothing saved on bad input."""

from __future__ import annotations

import re
from typing import Any

from loyalwallet.programs.forms import form_to_rules, rules_to_form
from loyalwallet.programs.rules import StampRules, rules_to_json
from loyalwallet.text import gettext_for
from staff_support import add_staff, login, page_csrf
from support import Shop

SINGLE: dict[str, Any] = {"stamps_required": 6, "reward": {"kind": "free_item", "name": "Free coffee"}}
TWO: dict[str, Any] = {
    **SINGLE,
    "kind_name": "Coffee",
    "kinds": [
        {
            "name": "Pastry",
            "stamps_required": 5,
            "qualifying": {"skus": [], "categories": ["pastry"]},
            "reward": {"kind": "fixed_off", "name": "100 off", "value": 10_000},
        }
    ],
}


def posted(rules: dict[str, Any], **changes: str) -> dict[str, str]:
    form = rules_to_form("stamp", rules, ",")
    data = {k: v for k, v in form.values.items()}
    data.update({k.replace("__", "-"): v for k, v in changes.items()})
    return data


def test_a_single_kind_form_round_trips_unchanged() -> None:
    form, rules = form_to_rules("stamp", posted(SINGLE))
    assert rules is not None and not form.errors, form.errors
    assert rules_to_json(rules) == rules_to_json(StampRules.model_validate(SINGLE))
    assert "kinds" not in rules_to_json(rules)


def test_kinds_round_trip_and_are_added_on_an_empty_slot() -> None:
    form, rules = form_to_rules("stamp", posted(TWO))
    assert rules is not None, form.errors
    assert rules_to_json(rules) == rules_to_json(StampRules.model_validate(TWO))
    # Kind 4 typed into the third slot while the second stays empty.
    form, rules = form_to_rules(
        "stamp",
        posted(TWO, kinds__2__name="Tea", kinds__2__stamps_required="4", kinds__2__reward__name="Free tea"),
    )
    assert isinstance(rules, StampRules), form.errors
    assert [k.name for k in rules.stamp_kinds()] == ["Coffee", "Pastry", "Tea"]
    assert rules.kinds[1].qualifying is None and rules.kinds[1].reward.name == "Free tea"


def test_bad_kinds_are_explained_at_their_inputs() -> None:
    _ = gettext_for("ru")
    form, rules = form_to_rules(
        "stamp",
        posted(
            TWO,
            kinds__0__stamps_required="1",
            kinds__2__name="Coffee",
            kinds__2__stamps_required="4",
            kinds__2__stamp_mode="item",
            kinds__1__name="Tea",
            kinds__1__stamps_required="много",
        ),
        _,
    )
    assert rules is None
    assert form.errors["kinds-0-stamps_required"] == "Не меньше 2"
    assert form.errors["kinds-1-stamps_required"].startswith("Введите")
    assert "kinds-2-name" in form.errors  # the same name as kind 1
    assert form.errors["kinds-2-qualifying-skus"]  # "per item" without items
    assert form.first_error == "kinds-0-stamps_required"


def test_the_page_saves_kinds_and_refuses_bad_ones(app, shop: Shop) -> None:
    program = shop.program("stamp", SINGLE)
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, f"/admin/programs/{program}")
    page = owner.get(f"/admin/programs/{program}")
    assert 'name="kinds-0-name"' in page.text and 'name="kinds-2-reward-name"' in page.text
    assert "Вид штампов 2" in page.text
    data = posted(
        SINGLE,
        csrf=csrf,
        name="Кофе и выпечка",
        status="active",
        kind_name="Кофе",
        kinds__0__name="Выпечка",
        kinds__0__stamps_required="5",
        kinds__0__stamp_mode="item",
        kinds__0__qualifying__categories="pastry",
        kinds__0__reward__name="Круассан",
    )
    bad = owner.post(f"/admin/programs/{program}", data={**data, "kinds-0-stamps_required": "0"})
    assert bad.status_code == 422
    assert re.search(r'name="kinds-0-stamps_required"[^>]*aria-invalid="true"', bad.text)
    assert 'id="e-kinds-0-stamps_required">Не меньше 2' in bad.text
    assert "kinds" not in shop.get(f"/api/v1/programs/{program}").json()["rules"]
    saved = owner.post(f"/admin/programs/{program}", data=data, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    rules = shop.get(f"/api/v1/programs/{program}").json()["rules"]
    assert rules["kind_name"] == "Кофе"
    assert rules["kinds"][0]["name"] == "Выпечка" and rules["kinds"][0]["qualifying"]["categories"] == [
        "pastry"
    ]
    again = owner.get(f"/admin/programs/{program}")
    assert 'value="Выпечка"' in again.text
