"""The page walk: every HTML page the app registers, opened in headless Chromium as the
person who meets it, on one seeded café; what each page says and what axe-core finds.

`PAGES` tells how to open each route template with the seeded data; a route the walk does
not know fails the walk (teach it here: a new page is walked from its first day). `SKIP`
holds the GET routes that are not pages (files, JSON, redirects to other sites).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from starlette.routing import Route

from loyalwallet import wiring

ROOT = Path(__file__).resolve().parents[1]
# The version is pinned in the Makefile (`make axe` installs it under .cache/axe-<version>).
AXE_VERSION = re.search(r"^AXE_VERSION\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)  # type: ignore[union-attr]
AXE_JS = ROOT / ".cache" / f"axe-{AXE_VERSION}" / "node_modules" / "axe-core" / "axe.min.js"

# GET routes that answer no page for a person to read.
SKIP = {
    "/assets/{merchant_id}/{sha}",
    "/assets/{merchant_id}/programs/{program_id}/v{version}/stamps/{stamps}.png",
    "/c/sw.js",
    "/c/{token}/manifest.webmanifest",
    "/c/{token}/icon-{size:int}.png",
    "/wallet/apple/coupons/{merchant_id}/{code}/{sig}/pass.pkpass",
    "/wallet/apple/v1/devices/{device_id}/registrations/{pass_type_id}",
    "/wallet/apple/v1/passes/{pass_type_id}/{serial}",
    "/admin/export/guests.csv",
    "/admin/export/purchases.csv",
    "/admin/feedback.csv",
    "/admin/reports/staff.csv",
    "/g/{token}/print.pdf",
    "/g/{public_token}/pass.pkpass",  # the certificate's Apple pass
    "/g/{token}/google",  # a redirect to Google's save page
    "/cashier/plastic",
    "/brand/{colours}.css",  # a page's colours as a stylesheet
    "/admin/programs/{program_id}/invite/{name}",  # the QR and table tent downloads  # JSON for the cashier page's script
    "/r/{token}",  # a redirect to /join/{id}?ref=..., walked as the join page
    "/",  # a redirect by role
    "/favicon.ico",
    "/docs",  # Swagger UI and ReDoc: the API's reference, in English by design
    "/redoc",
    "/docs-assets/{name}",
    "/readyz",
    "/metrics",
    "/healthz",
    "/openapi.json",
}


@dataclass
class Seed:
    """What the seeded café has, by the names the route templates use."""

    programs: dict[str, int]
    card_tokens: dict[str, str]
    customer_id: int
    campaign_id: int
    verify_path: str
    done_path: str
    channel_token: str
    certificate_path: str
    rate_path: str
    unsubscribe_token: str
    extra: dict[str, list[str]] = field(default_factory=dict)


# Who opens a page: "owner" (logged in), "cashier" (logged in) or "guest" (no session).
def pages_for(seed: Seed) -> dict[str, tuple[str, list[str]]]:
    programs = list(seed.programs.values())
    return {
        "/login": ("guest", ["/login"]),
        "/account/location": ("owner", ["/account/location"]),
        "/join/{program_id:int}": ("guest", [f"/join/{p}" for p in programs]),
        "/join/verify/{token}": ("guest", [seed.verify_path]),
        "/join/done/{token}": ("guest", [seed.done_path]),
        "/j/{token}": ("guest", [f"/j/{seed.channel_token}"]),
        "/c/{token}": ("guest", [f"/c/{t}" for t in seed.card_tokens.values()]),
        "/c/{token}/rate/{purchase_id:int}": ("guest", [seed.rate_path]),
        # No Apple certificate, no Google issuer: each answers a browser with a page.
        "/c/{token}/google": ("guest", [f"/c/{seed.card_tokens['bonus']}/google"]),
        "/c/{public_token}/pass.pkpass": ("guest", [f"/c/{seed.card_tokens['bonus']}/pass.pkpass"]),
        "/g/{token}": ("guest", [seed.certificate_path]),
        "/u/{token}": ("guest", [f"/u/{seed.unsubscribe_token}"]),
        "/cashier": ("cashier", ["/cashier"]),
        "/cashier/certificates": ("cashier", ["/cashier/certificates"]),
        "/admin/programs/{program_id}": ("owner", [f"/admin/programs/{p}" for p in programs]),
        "/admin/programs/{program_id}/design": ("owner", [f"/admin/programs/{p}/design" for p in programs]),
        "/admin/programs/{program_id}/invite": ("owner", [f"/admin/programs/{p}/invite" for p in programs]),
        "/admin/guests/{customer_id}": ("owner", [f"/admin/guests/{seed.customer_id}"]),
        "/admin/campaigns/{campaign_id}": ("owner", [f"/admin/campaigns/{seed.campaign_id}"]),
        **{template: ("owner", paths) for template, paths in seed.extra.items()},
    }


def html_routes() -> list[str]:
    """Every GET route template outside the JSON API, in the app's order."""
    seen: list[str] = []
    for router in wiring.routers():
        for route in router.routes:
            if not isinstance(route, Route) or "GET" not in (route.methods or set()):
                continue
            if route.path.startswith("/api/") or route.path in seen:
                continue
            seen.append(route.path)
    return seen


def plan(seed: Seed) -> tuple[list[tuple[str, str]], list[str]]:
    """[(who, path)] to open, and the route templates the walk cannot open."""
    known = pages_for(seed)
    visits: list[tuple[str, str]] = []
    unknown: list[str] = []
    for template in html_routes():
        if template in SKIP:
            continue
        if template in known:
            who, paths = known[template]
            visits += [(who, p) for p in paths]
        elif "{" not in template:
            visits.append(("cashier" if template.startswith("/cashier") else "owner", template))
        else:
            unknown.append(template)
    return visits + ERROR_PAGES, unknown


# The pages a guest meets when a link is wrong or outdated.
ERROR_PAGES = [
    ("guest", "/c/not-a-card"),
    ("guest", "/join/999999"),
    ("guest", "/g/not-a-certificate"),
    ("guest", "/u/not-a-token"),
    ("guest", "/j/not-a-link"),
]


WALLET_LINKS = ("/google", "/pass.pkpass")


def expected_status(path: str) -> set[int]:
    if path in {p for _, p in ERROR_PAGES}:
        return {404}
    if path.endswith(WALLET_LINKS):
        # A page while the café has no certificate or issuer; in a run where an earlier test
        # set up a server-wide one, a download or Google's site instead (DOWNLOAD).
        return {503, DOWNLOAD}
    return {200}


DOWNLOAD = -1  # the "status" of a wallet link that answered a file or left the site


# --- what a page says -------------------------------------------------------------------

# Every text node (hidden ones and <template> content too: they are shown later), the
# attributes people read or hear, the title. <code>/<pre>/<kbd>/<samp> hold what is typed
# or pasted (a snippet, a key), not prose.
COLLECT_TEXT = """() => {
  const out = [document.title];
  const skip = new Set(['SCRIPT', 'STYLE', 'CODE', 'PRE', 'KBD', 'SAMP', 'TEXTAREA']);
  const attrs = ['placeholder', 'title', 'aria-label', 'alt', 'data-confirm'];
  const walk = (root) => {
    for (const node of root.childNodes) {
      if (node.nodeType === 3) { out.push(node.textContent); continue; }
      if (node.nodeType !== 1 || skip.has(node.tagName)) continue;
      for (const a of attrs) if (node.hasAttribute(a)) out.push(node.getAttribute(a));
      if (node.tagName === 'INPUT' && ['submit', 'button'].includes(node.type)) out.push(node.value);
      if (node.tagName === 'TEMPLATE') walk(node.content);
      walk(node);
    }
  };
  walk(document.documentElement);
  return out.join('\\n');
}"""

# Words that are the same in Russian: brands, formats, protocols, units.
BRAND_WORDS = """
    Apple Google Wallet Telegram BotFather iiko iikoCloud iikoFront iikoWeb loyalwallet LoyalWallet SMS SMS.ru
    QR PDF PDF417 CSV API URL HTTPS HTTP JSON PNG SVG JPEG APNs PassKit Webhook webhooks HMAC ID UTM POS CSRF
    SKU CRM RFM Instagram VK VKontakte WhatsApp Yandex 2GIS e-mail email E-mail RUB USD EUR ru en RU EN iOS
    Android Wi-Fi Bot Token Bearer pem PEM JWT OAuth iPhone UTC Enter Esc Tab Aztec iframe script push cer
    WWDR Pass Type Team Issuer Certificates Identifiers Profiles Keys Pay Cloud Console
    terrace
"""
# (The last lines: the names of Apple's and Google's console pages and fields, as the owner
# finds them there, and the example slug of a channel, which is Latin by rule.)
ALLOWED = {w.lower() for w in BRAND_WORDS.split()}

URL_OR_EMAIL = re.compile(r"\S+@\S+|\S*/\S*|\b[\w.-]+\.(?:ru|com|org|test|local)\b\S*")
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")


def english_words(text: str) -> list[str]:
    """Latin words that are not in the allow-list and carry no digit (codes, ids)."""
    found = []
    for line in text.splitlines():
        line = URL_OR_EMAIL.sub(" ", line)
        for token in line.split():
            # codes and ids, file names, paths, event names (card.created), snake_case keys
            if any(ch.isdigit() for ch in token) or "_" in token or re.search(r"\w[./]\w", token):
                continue
            for word in WORD.findall(token):
                if len(word) < 2 or word.lower() in ALLOWED:
                    continue
                found.append(word)
    return found


# Russian nouns that follow counts on our pages: (one, few, many).
NOUNS = [
    ("штамп", "штампа", "штампов"),
    ("балл", "балла", "баллов"),
    ("бонус", "бонуса", "бонусов"),
    ("возврат", "возврата", "возвратов"),
    ("визит", "визита", "визитов"),
    ("покупка", "покупки", "покупок"),
    ("гость", "гостя", "гостей"),
    ("карта", "карты", "карт"),
    ("день", "дня", "дней"),
    ("раз", "раза", "раз"),
    ("оценка", "оценки", "оценок"),
    ("отзыв", "отзыва", "отзывов"),
    ("сообщение", "сообщения", "сообщений"),
    ("получатель", "получателя", "получателей"),
    ("подарок", "подарка", "подарков"),
    ("купон", "купона", "купонов"),
    ("тревога", "тревоги", "тревог"),
    ("операция", "операции", "операций"),
    ("месяц", "месяца", "месяцев"),
    ("час", "часа", "часов"),
    ("минута", "минуты", "минут"),
    ("сертификат", "сертификата", "сертификатов"),
    ("скан", "скана", "сканов"),
    ("ошибка", "ошибки", "ошибок"),
]
COUNT_NOUN = re.compile(
    r"(?<![\d.,])(\d{1,3}(?:[\u00a0\u202f ]\d{3})+|\d+)(?![\d.,]\d)[\u00a0 ]+([а-яё]+)", re.I
)


def russian_form(n: int) -> int:
    if n % 10 == 1 and n % 100 != 11:
        return 0
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return 1
    return 2


def wrong_plurals(text: str) -> list[str]:
    """ "1 штампов", "2 возвратов", "5 балла": a count followed by a noun in the wrong form."""
    wrong = []
    for match in COUNT_NOUN.finditer(text):
        n = int(re.sub(r"\D", "", match.group(1)))
        word = match.group(2).lower()
        for forms in NOUNS:
            if word in forms and word != forms[russian_form(n)] and forms[russian_form(n)] != word:
                # "раз" is both "one" and "many": only a form that is never right is wrong.
                if not (forms[0] == forms[2] and word == forms[0] and russian_form(n) != 1):
                    wrong.append(match.group(0).replace("\u00a0", " "))
                break
    return wrong


# --- axe-core ---------------------------------------------------------------------------


def axe_source() -> str:
    """axe-core from the npm registry (version pinned in the Makefile): `make axe` puts it in
    .cache/axe; the walk runs that step itself on a machine that has not yet."""
    if not AXE_JS.exists() and shutil.which("npm") and shutil.which("make"):
        subprocess.run(["make", "-s", "axe"], cwd=ROOT, check=False, timeout=300)
    if not AXE_JS.exists():
        raise FileNotFoundError(f"{AXE_JS} is missing: run `make axe` (npm install of axe-core)")
    return AXE_JS.read_text()


AXE_URL = "/__axe-core.js"  # answered by the test's route, never by the app
RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5),
  }));
}"""


@dataclass
class PageReport:
    who: str
    path: str
    status: int
    english: list[str]
    plurals: list[str]
    violations: list[dict[str, Any]]
    text: str = ""

    @property
    def serious(self) -> list[dict[str, Any]]:
        return [v for v in self.violations if v["impact"] in ("critical", "serious")]


def walk(
    contexts: dict[str, Any], base_url: str, visits: list[tuple[str, str]], axe: str | None
) -> list[PageReport]:
    """Open each page in its person's browser context; collect text problems and axe's
    violations. `contexts` maps "owner"/"cashier"/"guest" to logged-in contexts."""
    pages = {who: ctx.new_page() for who, ctx in contexts.items()}
    if axe is not None:
        # axe-core comes as a script of the site's own origin, so Chromium caches its
        # compiled code between pages (a 650 KB inline script is compiled on every page).
        for ctx in contexts.values():
            ctx.route(
                f"{base_url}{AXE_URL}",
                lambda route: route.fulfill(
                    body=axe, content_type="application/javascript", headers={"Cache-Control": "max-age=3600"}
                ),
            )
    reports = []
    for who, path in visits:
        page = pages[who]
        try:
            response = page.goto(base_url + path, wait_until="load")
        except PlaywrightError:
            if not path.endswith(WALLET_LINKS):
                raise
            reports.append(PageReport(who, path, DOWNLOAD, [], [], []))
            continue
        status = response.status if response else 0
        text = page.evaluate(COLLECT_TEXT)
        violations: list[dict[str, Any]] = []
        if axe is not None:
            page.add_script_tag(url=base_url + AXE_URL)
            violations = page.evaluate(RUN_AXE)
        reports.append(
            PageReport(who, path, status, english_words(text), wrong_plurals(text), violations, text)
        )
    return reports


def describe(reports: list[PageReport], pick: Callable[[PageReport], list[Any]]) -> str:
    return "\n".join(f"{r.who} {r.path}: {pick(r)}" for r in reports if pick(r))
