"""The two statistics pages: the coordinator's exact dashboard and the analysts' release page."""

from __future__ import annotations

import re
from datetime import date, timedelta

from tests.stats.conftest import build_field_month
from tests.web.conftest import Pages


def _row(html: str, row_id: str) -> list[str]:
    row = html.split(f'id="{row_id}"', 1)[1].split("</tr>", 1)[0]
    return re.findall(r'<td class="num[^"]*">([^<]*)<', row)


def test_the_field_month_reads_80_and_40_on_both_pages(client, session, factory) -> None:
    last_month = (date.today().replace(day=1) - timedelta(days=1)).replace(day=1)
    build_field_month(factory, month=last_month)
    pages = Pages(client, session)
    pages.signed_in(factory.account("coordinator"))
    html = client.get("/dashboard").text
    # At a glance: this month, last month, this year.
    assert _row(html, "glance-contacts")[1] == "80"
    assert _row(html, "glance-evacuated")[1] == "40"
    assert _row(html, "glance-cases_opened")[1] == "50"
    assert "&lt;5" not in html

    client.cookies.clear()
    pages.signed_in(factory.account("analyst"))  # the first use releases last month
    html = client.get("/dashboard").text
    table = html.split('id="release-table"', 1)[1].split("</table>", 1)[0]
    total = table.split('class="total"', 1)[1]
    assert re.findall(r'class="num">(\d+)<', total)[:3] == ["80", "50", "40"]
    # What no release holds is said, not left to look like an empty table.
    said = html.split('id="not-published"', 1)[1].split("</p>", 1)[0].lower()
    assert "channel" in said and "risk" in said and "not published" in said


def test_the_russian_dashboard_names_counts_not_statuses(client, session, factory) -> None:
    # A count of verified or resettled cases is «Проверено случаев», «Обустроено», not the status labels «Проверен»,
    # «Обустроен» a single case carries (the measures have a context of their own in the catalog).
    pages = Pages(client, session)
    pages.signed_in(factory.account("coordinator"))
    assert pages.post("/language", {"locale": "ru", "next": "/dashboard"}, from_page="/dashboard").status_code == 303
    html = client.get("/dashboard").text

    def heading(row_id: str) -> str:
        return html.split(f'id="{row_id}"', 1)[1].split("</th>", 1)[0].rsplit(">", 1)[1]

    assert heading("glance-verified") == "Проверено случаев"
    assert heading("glance-resettled") == "Обустроено"
    assert heading("glance-cases_opened") == "Открыто случаев"
    assert heading("glance-contacts") == "Обращения"
    # The per-period table's columns too; the open-cases chart keeps the status labels, which there name statuses.
    columns = re.findall(r'<th class="num">([^<]*)</th>', html)
    assert "Обустроено" in columns and "Открыто случаев" in columns
    assert "Проверен" not in columns and "Обустроен" not in columns


def test_a_release_asked_for_that_does_not_exist_is_said(client, session, factory) -> None:
    pages = Pages(client, session)
    pages.signed_in(factory.account("analyst"))
    assert 'id="no-such-release"' not in client.get("/dashboard").text
    html = client.get("/dashboard", params={"release": "2099-01"}).text
    assert "There is no release for that period." in html
