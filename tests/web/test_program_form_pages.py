"""The program rules form through HTTP: save, validation errors, create, roles."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select

from loyalwallet import db
from loyalwallet.outbox.models import OutboxMessage
from loyalwallet.programs.forms import rules_to_form
from staff_support import add_staff, login, page_csrf
from support import Shop

BONUS: dict[str, Any] = {
    "tiers": [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": 5},
        {"name": "Gold", "min_spend": 1_000_000, "cashback_pct": 10},
    ],
    "welcome_points": 500,
}


def fields(program_kind: str, rules: dict[str, Any], **changes: str) -> dict[str, str]:
    """The form as the page shows it (Russian: a decimal comma), with `changes`."""
    form = rules_to_form(program_kind, rules, ",")
    data = {k: v for k, v in form.values.items() if v or k != "accrue_on_redeem"}
    for i, row in enumerate(form.tiers):
        data.update({f"tier-{i}-{col}": value for col, value in row.items()})
    data.update({k.replace("__", "-"): v for k, v in changes.items()})
    return data


def changed_topics(shop: Shop) -> int:
    with db.read() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.merchant_id == shop.merchant_id, OutboxMessage.topic == "program.changed"
                )
            )
            or 0
        )


def test_page_shows_the_form_in_russian(app, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    owner = login(app, add_staff(shop, "owner"))
    page = owner.get(f"/admin/programs/{program}")
    assert page.status_code == 200
    assert 'name="tier-1-min_spend" value="10 000"' in page.text
    assert "Приветственные баллы" in page.text and "Уровни" in page.text
    assert 'id="p-rules"' in page.text  # the JSON is still there, in the advanced section
    english = owner.get(f"/admin/programs/{program}?lang=en")
    assert "Welcome points" in english.text


def test_save_through_the_form_updates_rules_and_queues_the_refresh(app, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, f"/admin/programs/{program}")
    data = fields(
        "bonus",
        BONUS,
        csrf=csrf,
        name="Зерно",
        status="active",
        tier__1__pct="12,5",
        tier__5__name="Platinum",
        tier__5__min_spend="50 000,50",
        tier__5__pct="15",
        min_check="150",
        ttl_days="",
    )
    saved = owner.post(f"/admin/programs/{program}", data=data, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    after = shop.get(f"/api/v1/programs/{program}").json()
    assert after["name"] == "Зерно" and after["version"] == 2
    assert after["rules"]["tiers"] == [
        {"name": "Bronze", "min_spend": 0, "cashback_pct": "5"},
        {"name": "Gold", "min_spend": 1_000_000, "cashback_pct": "12.5"},
        {"name": "Platinum", "min_spend": 5_000_050, "cashback_pct": "15"},
    ]
    assert after["rules"]["min_check"] == 15_000 and after["rules"]["ttl_days"] is None
    assert changed_topics(shop) == 1
    # Saving the same rules again changes nothing and refreshes no card.
    again = owner.post(
        f"/admin/programs/{program}",
        data=fields("bonus", after["rules"], csrf=csrf, name="Зерно", status="active"),
        follow_redirects=False,
    )
    assert again.status_code == 303
    assert shop.get(f"/api/v1/programs/{program}").json()["version"] == 2
    assert changed_topics(shop) == 1


def test_errors_are_shown_next_to_the_fields_and_nothing_is_saved(app, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, f"/admin/programs/{program}")
    data = fields("bonus", BONUS, csrf=csrf, name="Renamed", tier__1__min_spend="много", max_redeem_pct="150")
    bad = owner.post(f"/admin/programs/{program}", data=data)
    assert bad.status_code == 422
    assert 'id="e-tier-1-min_spend">Введите сумму, например 1500 или 1500,50' in bad.text
    assert 'id="e-max_redeem_pct">Не больше 100' in bad.text
    assert 'value="много"' in bad.text  # what was typed stays in the input
    assert re.search(r'name="tier-1-min_spend"[^>]*aria-invalid="true"[^>]*autofocus', bad.text)
    after = shop.get(f"/api/v1/programs/{program}").json()
    assert after["name"] != "Renamed" and after["version"] == 1 and changed_topics(shop) == 0
    english = owner.post(f"/admin/programs/{program}?lang=en", data=data)
    assert english.status_code == 422 and "Must be at most 100" in english.text


def test_create_from_the_kind_chooser(app, shop: Shop) -> None:
    manager = login(app, add_staff(shop, "manager"))
    listing = manager.get("/admin/programs")
    assert 'action="/admin/programs/new"' in listing.text and "Карта со штампами" in listing.text
    page = manager.get("/admin/programs/new", params={"kind": "stamp", "name": "Кофе"})
    assert page.status_code == 200 and 'value="Кофе в подарок"' in page.text  # starter, in Russian
    csrf = page_csrf(manager, "/admin/programs")
    starter = {"stamps_required": 6, "reward": {"kind": "free_item", "name": "Кофе в подарок"}}
    missing = manager.post(
        "/admin/programs",
        data=fields("stamp", starter, csrf=csrf, kind="stamp", name="", stamps_required="1"),
    )
    assert missing.status_code == 422
    assert (
        'id="e-name">Обязательное поле' in missing.text
        and 'id="e-stamps_required">Не меньше 2' in missing.text
    )
    created = manager.post(
        "/admin/programs",
        data=fields("stamp", starter, csrf=csrf, kind="stamp", name="Кофе", stamps_required="10"),
        follow_redirects=False,
    )
    assert created.status_code == 303
    program_id = int(created.headers["location"].rsplit("/", 1)[1])
    program = shop.get(f"/api/v1/programs/{program_id}").json()
    assert program["name"] == "Кофе" and program["kind"] == "stamp"
    assert (
        program["rules"]["stamps_required"] == 10 and program["rules"]["reward"]["name"] == "Кофе в подарок"
    )
    assert (
        manager.get("/admin/programs/new", params={"kind": "lottery"}, follow_redirects=False).status_code
        == 303
    )


def test_a_cashier_cannot_open_or_save_the_rules(app, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    cashier = login(app, add_staff(shop, "cashier", [shop.location_id]))
    csrf = page_csrf(cashier, "/cashier")
    assert cashier.get(f"/admin/programs/{program}").status_code == 403
    assert cashier.get("/admin/programs/new?kind=bonus").status_code == 403
    data = fields("bonus", BONUS, csrf=csrf, welcome_points="100000")
    assert cashier.post(f"/admin/programs/{program}", data=data).status_code == 403
    assert cashier.post("/admin/programs", data={**data, "kind": "bonus", "name": "X"}).status_code == 403
    assert shop.get(f"/api/v1/programs/{program}").json()["rules"]["welcome_points"] == 500
    assert len(shop.get("/api/v1/programs").json()["items"]) == 1


def test_json_errors_are_translated_and_stay_in_the_advanced_section(app, shop: Shop) -> None:
    program = shop.program("bonus", BONUS)
    owner = login(app, add_staff(shop, "owner"))
    csrf = page_csrf(owner, f"/admin/programs/{program}")
    bad = owner.post(f"/admin/programs/{program}", data={"csrf": csrf, "rules": "[1]"})
    assert bad.status_code == 422 and "Правила — не JSON-объект." in bad.text
    assert '<details class="card advanced" id="advanced" open>' in bad.text
