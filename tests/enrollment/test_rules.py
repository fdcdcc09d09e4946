"""Pure rules of enrollment: codes, limits, the form, offers, devices, referrals."""

from __future__ import annotations

import datetime as dt

import pytest

from loyalwallet.enrollment import rules
from loyalwallet.errors import DomainError
from loyalwallet.programs.rules import parse_rules
from loyalwallet.text import translate

NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


def test_otp_is_six_digits_and_hash_is_keyed_and_salted() -> None:
    code = rules.new_otp()
    assert len(code) == 6 and code.isdigit()
    h = rules.otp_hash(b"k" * 32, "tok", "123456")
    assert rules.otp_matches(b"k" * 32, "tok", "123456", h)
    assert rules.otp_matches(b"k" * 32, "tok", " 123-456 ", h)  # typed with separators
    assert not rules.otp_matches(b"k" * 32, "tok", "123457", h)
    assert not rules.otp_matches(b"k" * 32, "other", "123456", h)  # salted by challenge
    assert not rules.otp_matches(b"x" * 32, "tok", "123456", h)  # keyed
    assert not rules.otp_matches(b"k" * 32, "tok", "", h)


def test_retry_after_counts_within_each_window() -> None:
    limits = (rules.Limit(rules.HOUR, 3), rules.Limit(rules.DAY, 5))
    minutes = lambda *ms: [NOW - dt.timedelta(minutes=m) for m in ms]  # noqa: E731
    assert rules.retry_after(limits, [], NOW) is None
    assert rules.retry_after(limits, minutes(10, 20), NOW) is None
    # Three in the last hour: allowed again when the oldest of them (50 min ago) leaves it.
    assert rules.retry_after(limits, minutes(10, 20, 50), NOW) == 600
    # Five in the day (two long ago): the day limit decides.
    wait = rules.retry_after(limits, minutes(10, 200, 300, 400, 1400), NOW)
    assert wait == 40 * 60


def test_form_settings_validation() -> None:
    default = rules.parse_form_settings(None)
    assert [f.name for f in default.fields] == ["name", "phone", "birthday"]
    assert next(f for f in default.fields if f.key == "phone").required
    with pytest.raises(DomainError) as exc:
        rules.parse_form_settings({"fields": [{"key": "name"}]})
    assert exc.value.code == "validation_error"
    seven = [{"key": k} for k in ("name", "phone", "birthday", "email", "gender", "city")] + [
        {"key": "custom", "id": "drink", "labels": {"en": "Drink"}}
    ]
    with pytest.raises(DomainError):
        rules.parse_form_settings({"fields": seven})
    with pytest.raises(DomainError):  # a custom field needs an id and a label
        rules.parse_form_settings({"fields": [{"key": "phone"}, {"key": "custom", "labels": {"en": "x"}}]})
    with pytest.raises(DomainError):  # twice the same field
        rules.parse_form_settings({"fields": [{"key": "phone"}, {"key": "phone"}]})
    ok = rules.parse_form_settings(
        {
            "fields": [
                {"key": "phone", "required": False},
                {"key": "custom", "id": "drink", "labels": {"ru": "Напиток"}, "options": ["Латте"]},
            ]
        }
    )
    assert ok.fields[0].required  # the phone is always required
    assert ok.fields[1].name == "custom_drink"


def _settings() -> rules.FormSettings:
    return rules.parse_form_settings(
        {
            "fields": [
                {"key": "name", "required": True},
                {"key": "phone"},
                {"key": "birthday"},
                {"key": "email"},
                {"key": "gender"},
                {"key": "custom", "id": "drink", "labels": {"en": "Drink"}, "options": ["Latte", "Tea"]},
            ]
        }
    )


def test_clean_form_normalises_and_reports_errors() -> None:
    form, errors = rules.clean_form(
        _settings(),
        {
            "name": "  Anna\u200b  <b>Bold</b>\n",
            "phone": "8 (916) 123-45-67",
            "birthday": "31.12.1990",
            "email": "Anna@Example.COM",
            "gender": "female",
            "custom_drink": "Tea",
        },
        today=TODAY,
    )
    assert errors == {}
    assert form.phone == "+79161234567"
    assert form.name == "Anna <b>Bold</b>"  # markup kept as typed; pages escape it
    assert form.birthday == dt.date(1990, 12, 31)
    assert form.email == "anna@example.com"
    assert form.custom == {"drink": "Tea"}

    _, errors = rules.clean_form(
        _settings(),
        {
            "name": "",
            "phone": "12345",
            "birthday": "2099-01-01",
            "email": "nope",
            "gender": "x",
            "custom_drink": "Beer",
        },
        today=TODAY,
    )
    assert errors == {
        "name": rules.ERR_REQUIRED,
        "phone": rules.ERR_PHONE,
        "birthday": rules.ERR_DATE_RANGE,
        "email": rules.ERR_EMAIL,
        "gender": rules.ERR_CHOICE,
        "custom_drink": rules.ERR_CHOICE,
    }
    _, errors = rules.clean_form(
        _settings(), {"name": "A" * 101, "phone": "+49 30 1234567"}, today=TODAY, sms_regions=["RU"]
    )
    assert errors == {"name": rules.ERR_TOO_LONG, "phone": rules.ERR_PHONE_REGION}
    _, errors = rules.clean_form(
        _settings(), {"name": "A", "phone": "+7 916 123 45 67", "birthday": "soon"}, today=TODAY
    )
    assert errors == {"birthday": rules.ERR_DATE}


def test_offer_lines_from_rules() -> None:
    bonus = parse_rules(
        "bonus",
        {
            "tiers": [
                {"name": "B", "min_spend": 0, "cashback_pct": 5},
                {"name": "G", "min_spend": 100, "cashback_pct": 7.5},
            ],
            "welcome_points": 100,
            "referral_points": 50,
        },
    )
    lines = [translate("en", msg, params) for msg, params in rules.offer_lines(bonus)]
    assert lines[0] == "100 welcome points"
    assert "5% back in points on every purchase" in lines
    assert "Up to 7.5% as you spend more" in lines
    assert "50 points for every friend you bring" in lines
    in_russian = [translate("ru", msg, params) for msg, params in rules.offer_lines(bonus)]
    assert in_russian[0] == "100 приветственных баллов"
    assert "50 баллов за каждого приведённого друга" in in_russian
    stamp = parse_rules("stamp", {"stamps_required": 6, "reward": {"name": "Coffee"}})
    assert [translate("en", m, p) for m, p in rules.offer_lines(stamp)] == [
        "Paid visits: 5, then on visit 6: Coffee"
    ]
    one = parse_rules("stamp", {"stamps_required": 21, "welcome_stamps": 1})
    in_russian = [translate("ru", m, p) for m, p in rules.offer_lines(one)]
    assert in_russian[0] == "Оплаченных визитов: 20, на 21-й визит — Подарок"  # the default name translated
    assert in_russian[1] == "1 штамп в подарок при регистрации"
    discount = parse_rules("discount", {"tiers": [{"name": "B", "min_spend": 0, "discount_pct": 5}]})
    assert [translate("en", m, p) for m, p in rules.offer_lines(discount)] == ["5% off every purchase"]


def test_platform_from_user_agent() -> None:
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Version/18.0 Mobile/15E148 Safari/604.1"
    android = "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/130.0 Mobile Safari/537.36"
    mac_safari = (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/18.0 Safari/605.1.15"
    )
    mac_chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"
    assert rules.platform(iphone) == "ios"
    assert rules.platform(android) == "android"
    assert rules.platform(mac_safari) == "ios"
    assert rules.platform(mac_chrome) == "desktop"
    assert rules.platform(None) == "desktop"


def test_card_channel() -> None:
    assert rules.card_channel("counter-1", "instagram", referred=True) == "counter-1"
    assert rules.card_channel(None, "instagram", referred=True) == "referral"
    assert rules.card_channel(None, "instagram", referred=False) == "instagram"
    assert rules.card_channel(None, None, referred=False) == "join_page"


def _facts(**kw: object) -> rules.ReferralFacts:
    base = dict(
        referrer_usable=True,
        friend_is_new=True,
        same_customer=False,
        same_device=False,
        same_ip_last_day=0,
        last_month=0,
    )
    return rules.ReferralFacts(**{**base, **kw})  # type: ignore[arg-type]


def test_referral_verdicts() -> None:
    assert rules.referral_verdict(_facts()) == "accepted"
    assert rules.referral_verdict(_facts(referrer_usable=False)) == "rejected:referrer"
    assert rules.referral_verdict(_facts(same_customer=True)) == "rejected:self"
    assert rules.referral_verdict(_facts(friend_is_new=False)) == "rejected:existing"
    assert rules.referral_verdict(_facts(same_device=True)) == "rejected:device"
    # A shared IP (café Wi-Fi) is fine once or twice a day, not more.
    assert rules.referral_verdict(_facts(same_ip_last_day=1)) == "accepted"
    assert rules.referral_verdict(_facts(same_ip_last_day=rules.REFERRALS_PER_IP_PER_DAY)) == "rejected:ip"
    assert rules.referral_verdict(_facts(last_month=rules.REFERRALS_PER_MONTH)) == "rejected:limit"


def test_referral_token_roundtrip_and_forgery() -> None:
    key = b"s" * 32
    token = rules.referral_token(key, 7, 1234)
    assert rules.referral_card_id(token) == 1234
    assert token.partition("-")[2] == rules.referral_tag(key, 7, 1234)
    assert rules.referral_tag(key, 7, 1235) != rules.referral_tag(key, 7, 1234)
    assert rules.referral_card_id("zz-123") is None
    assert rules.referral_card_id("4d2") is None
    assert rules.card_channel(None, None, referred=False, fallback="pos") == "pos"
