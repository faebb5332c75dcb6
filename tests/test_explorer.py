"""The object explorer at /explore, in headless Chromium: the class tree, a class's instances (search narrows
and sorts them), an object's history with the difference of two versions, its provenance, and its links."""
from __future__ import annotations

import asyncio
import json
import os

from tests.cdp import Browser, Page
from tests.stack import ROOT, Stack

SCREENSHOT = ROOT / "docs" / "explorer.png"



async def ontology(stack: Stack) -> str:
    db = await stack.new_database()
    for cls in ({"id": "Company", "properties": [{"name": "name", "type": "string", "required": True}]},
                {"id": "Agent", "abstract": True, "properties": [{"name": "name", "type": "string"}]},
                {"id": "Person", "parent_class": "Agent",
                 "properties": [{"name": "age", "type": "integer"},
                                {"name": "employer", "type": "link", "target": "Company"}]}):
        assert (await stack.run("POST", f"/api/v1/ontology/{db}/async/create", cls))["status"] == "COMPLETED"
    for class_id, data in (("Company", {"instance_id": "acme", "name": "Acme"}),
                           ("Person", {"instance_id": "ada", "name": "Ada", "age": 36, "employer": "acme"}),
                           ("Person", {"instance_id": "bob", "name": "Bob", "age": 40}),
                           ("Person", {"instance_id": "cy", "name": "Cy", "age": 25})):
        done = await stack.run("POST", f"/api/v1/instances/{db}/async/{class_id}/create", {"data": data})
        assert done["status"] == "COMPLETED", done
    for change in ({"age": 37}, {"name": "Ada Lovelace"}):
        done = await stack.run("PUT", f"/api/v1/instances/{db}/async/Person/ada/update", {"data": change})
        assert done["status"] == "COMPLETED", done
    for _ in range(300):  # the search read model follows the event topics
        code, found = await stack.request("GET", f"/api/v1/search/{db}?class_id=Person&q=Lovelace")
        code, every = await stack.request("GET", f"/api/v1/search/{db}?class_id=Person")
        if found.get("total") == 1 and every.get("total") == 3:
            return db
        await asyncio.sleep(0.2)
    raise AssertionError(f"search did not catch up: {found} {every}")


async def rows(page: Page) -> list[str]:
    return list(await page.evaluate("[...document.querySelectorAll('#instances tbody tr')].map((r) => r.dataset.id)"))


async def reload_table(page: Page, action: str) -> None:
    await page.evaluate("document.getElementById('table-section').dataset.loaded = 'waiting'")
    await page.click(action)
    await page.wait_for("document.getElementById('table-section').dataset.loaded === 'true'", 30)


async def test_browse_classes_instances_history_and_links(browser: Browser, stack: Stack) -> None:
    db = await ontology(stack)
    page = await browser.new_page()
    try:
        await page.send("Page.addScriptToEvaluateOnNewDocument",
                        source=f"localStorage.setItem('spice.token', {json.dumps(stack.token('alice'))});")
        await page.navigate(f"{stack.base}/explore")
        await page.wait_for("document.body.dataset.ready === 'true'", 30)
        await page.evaluate(f"(() => {{ const s = document.getElementById('db-select'); s.value = {json.dumps(db)};"
                            " s.dispatchEvent(new Event('change')); })()")
        await page.wait_for("document.body.dataset.classes === '3'", 30)
        # The tree shows inheritance: Person under the abstract Agent.
        assert await page.evaluate(
            "!!document.querySelector('[data-class=Agent]').closest('li').querySelector('[data-class=Person]')")
        assert "abstract" in await page.evaluate("document.querySelector('[data-class=Agent]').textContent")

        await reload_table(page, "[data-class=Person]")
        assert sorted(await rows(page)) == ["ada", "bob", "cy"]
        await reload_table(page, "#instances th button[data-sort=age]")
        assert await rows(page) == ["cy", "ada", "bob"]  # 25, 37, 40
        await reload_table(page, "#instances th button[data-sort=age]")
        assert await rows(page) == ["bob", "ada", "cy"]  # descending
        await page.fill("#filter", "Lovelace")
        await reload_table(page, "#filter-form button[type=submit]")
        assert await rows(page) == ["ada"]

        await page.click("#instances tbody tr[data-id=ada]")
        await page.wait_for("document.getElementById('object-section').dataset.loaded === 'true'", 30)
        assert await page.evaluate("document.querySelectorAll('#timeline li').length") == 3
        provenance = await page.evaluate("document.getElementById('provenance').textContent")
        assert "created by alice" in provenance and "version 3" in provenance, provenance
        await page.evaluate("document.getElementById('diff-from').value = '1';"
                            "document.getElementById('diff-to').value = '3'")
        await page.click("#diff-show")
        changed = await page.evaluate(
            "[...document.querySelectorAll('#diff tbody tr')].map((r) => [r.dataset.property, r.className,"
            " [...r.cells].slice(1).map((c) => c.textContent)])")
        assert sorted(changed) == [["age", "changed", ["36", "37"]], ["name", "changed", ["Ada", "Ada Lovelace"]]]
        await page.evaluate("window.scrollTo(0, 0)")
        png = await page.screenshot(1280, 900)
        (stack.worker.logs / "explorer.png").write_bytes(png)
        if os.environ.get("SPICE_UPDATE_SCREENSHOT"):  # refresh the one in docs/ on purpose only
            SCREENSHOT.write_bytes(png)
        assert 0 < len(png) < 300_000, len(png)

        # A link is followed to the object it names.
        await page.evaluate("document.getElementById('object-section').dataset.loaded = 'waiting'")
        await page.click("#object-props button[data-link=acme]")
        await page.wait_for("document.getElementById('object-section').dataset.loaded === 'true'", 30)
        assert await page.evaluate("document.getElementById('object-heading').textContent") == "Company acme"
    finally:
        await page.close()
