"""The interactive HTML report: static checks, then a real headless Chromium driving the page."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from html_browser import chromium_path, launch, make_report  # noqa: E402

from anedoctor.report.html import render_html  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "html"


# ---------- real reports from small models ----------

@pytest.fixture(scope="module")
def mil_report(tmp_path_factory) -> dict:
    """Convs on the ANE split by a CPU-only band_part: a real prediction with switches."""
    np = pytest.importorskip("numpy")
    ct = pytest.importorskip("coremltools")
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import types

    import anedoctor

    w = (np.random.RandomState(0).randn(128, 128, 3, 3) * 0.01).astype(np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 128, 64, 64), dtype=types.fp16)], opset_version=ct.target.iOS17)
    def prog(x):
        for i in range(6):
            if i == 3:
                x = mb.band_part(x=x, lower=0, upper=-1, name="mask.band_part")
            x = mb.conv(x=x, weight=w, pad_type="same", name=f"block{i}.conv")
            x = mb.relu(x=x, name=f"block{i}.relu")
        return x

    path = tmp_path_factory.mktemp("mil") / "mixed.mlpackage"
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, skip_model_load=True).save(str(path))
    return anedoctor.check(str(path)).to_dict()


@pytest.fixture(scope="module")
def torch_report() -> dict:
    """A small torch LSTM: recurrent ops never reach the ANE."""
    pytest.importorskip("torch")
    import zoo

    import anedoctor

    module, inputs = zoo.ZOO["lstm"]()
    return anedoctor.check(module, inputs).to_dict()


# ---------- static ----------

def test_page_is_self_contained_and_escapes_data():
    rep = make_report(30)
    rep["ops"][0]["name"] = "</script><script>alert(1)</script>"
    html = render_html(rep)
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert "</script><script>alert" not in html
    assert html.count("<script") == 2
    assert "<b>not</b>" not in html  # notes are text, not markup


def test_unknown_keys_become_columns_and_panels():
    rep = make_report(20, extra=True)
    rep["panels"] = [{"title": "Numerics", "rows": [{"op": "conv_1", "psnr": 41.2}]},
                     {"title": "Timings", "html": "<p id='custom-panel'>measured</p>"}]
    rep["future_key"] = {"anything": [1, 2]}
    html = render_html(rep)
    assert "Numerics" in html and "<td>41.2</td>" in html and "id='custom-panel'" in html


def test_10k_page_is_small():
    html = render_html(make_report(10_000, parts=("encoder", "decoder")))
    assert len(html.encode()) < 10 * 2**20


def test_minimal_report_renders():
    html = render_html({"schema_version": "1.0", "ops": []})
    assert "<main>" in html


# ---------- browser ----------

@pytest.fixture(scope="module")
def browser():
    if chromium_path() is None:
        pytest.skip("no Chromium executable found (apt-get install chromium, or set ANEDOCTOR_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    with sync_api.sync_playwright() as p:
        b = launch(p)
        yield b
        b.close()


@pytest.fixture
def open_report(browser, tmp_path):
    """open_report(report, scheme) -> page; fails the test on any console error or page error."""
    pages = []

    def open_(report: dict, scheme: str = "light", width: int = 1400):
        ctx = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
        page = ctx.new_page()
        page.errors = []
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        path = tmp_path / f"report{len(pages)}.html"
        path.write_text(render_html(report), encoding="utf-8")
        page.goto(path.as_uri())
        page.wait_for_function("window.anedoctor !== undefined")
        pages.append(page)
        return page

    yield open_
    for page in pages:
        assert page.errors == [], page.errors
        page.context.close()


def shown(page, key: str) -> str:
    return page.inner_text(f'#summary .num[data-k="{key}"]')


def count_text(page) -> str:
    return page.inner_text("#f-count")


def click_op(page, i: int) -> None:
    """Scroll the virtual table (unsorted, unfiltered) to op i and click its row."""
    page.eval_on_selector("#table-wrap", "(w, i) => { w.scrollTop = i * 30 - 120; }", i)
    page.click(f'#ops-table tr[data-i="{i}"]')


def selected(page) -> dict:
    return page.evaluate("""() => ({
        row: document.querySelector('#ops-table tr[aria-selected=true]')?.dataset.i,
        strip: document.querySelector('#strip .cursor')?.dataset.op,
        graph: document.querySelector('#graph .node.sel')?.dataset.op,
        detail: document.querySelector('#detail h3')?.textContent,
        hash: location.hash})""")


@pytest.mark.parametrize("which", ["mil", "torch", "synthetic"])
def test_counts_shown_equal_json(open_report, request, which):
    rep = {"mil": lambda: request.getfixturevalue("mil_report"),
           "torch": lambda: request.getfixturevalue("torch_report"),
           "synthetic": lambda: make_report(60, parts=("encoder", "decoder"))}[which]()
    s = rep["summary"]
    page = open_report(rep)
    for key in ("ops", "ane", "gpu", "cpu", "segments", "switches"):
        assert shown(page, key).replace(",", "") == str(s[key]), key
    assert shown(page, "ane_fraction") == f"{100 * s['ane_fraction']:.1f}%"
    assert shown(page, "ane_flops_fraction") == f"{100 * s['ane_flops_fraction']:.1f}%"
    assert page.inner_text("#kind") == rep["kind"].capitalize()
    assert count_text(page) == f"Showing {s['ops']} of {s['ops']} ops"
    assert page.get_attribute("#ops-table", "aria-rowcount") == str(s["ops"] + 1)
    assert page.locator(".causes tbody tr").count() == len(rep["causes"])
    # every switch is marked in the strip (clusters carry their size)
    assert page.evaluate("[...document.querySelectorAll('#strip .sw')].reduce((n, g) => n + +g.dataset.n, 0)") == s["switches"]
    page.click("#switch-list summary")
    assert page.locator("#switch-list li").count() == s["switches"]
    # small models show every op in the graph
    assert page.locator("#graph .node[data-op]").count() == s["ops"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{which}-light.png"), full_page=True)


def test_real_report_explains_cpu_op(open_report, mil_report):
    band = next(o for o in mil_report["ops"] if o["type"] == "band_part")
    page = open_report(mil_report)
    click_op(page, band["index"])
    sel = selected(page)
    assert sel["row"] == sel["strip"] == sel["graph"] == str(band["index"])
    detail = page.inner_text("#detail")
    assert band["name"] in detail
    for r in band["reasons"]:
        assert r["rule"] in detail and r["message"] in detail


def test_filters_and_search(open_report):
    rep = make_report(300, seed=3)
    ops = rep["ops"]
    page = open_report(rep)
    page.uncheck('#filters input[value="ane"]')
    assert count_text(page) == f"Showing {sum(o['device'] != 'ane' for o in ops)} of 300 ops"
    assert page.locator('#ops-table tr.row.dev-ane').count() == 0
    page.click("#f-clear")
    page.select_option("#f-rule", "OP-1")
    expect = [o["index"] for o in ops if any(r["rule"] == "OP-1" for r in o["reasons"] + o["notes"])]
    assert count_text(page) == f"Showing {len(expect)} of 300 ops"
    assert page.eval_on_selector_all("#ops-table tr.row", "rs => rs.map(r => +r.dataset.i)") == expect
    page.click("#f-clear")
    page.select_option("#f-type", "conv")
    assert count_text(page) == f"Showing {sum(o['type'] == 'conv' for o in ops)} of 300 ops"
    page.click("#f-clear")
    page.fill("#f-search", "LAYERS.4.")
    assert count_text(page) == f"Showing {sum('layers.4.' in o['name'] for o in ops)} of 300 ops"
    page.click("#f-clear")
    # "what to fix first" filters by its rule
    top = rep["causes"][0]["rule"]
    page.click(f'.causes button[data-rule="{top}"]')
    assert page.input_value("#f-rule") == top
    assert count_text(page) == f"Showing {sum(any(r['rule'] == top for r in o['reasons'] + o['notes']) for o in ops)} of 300 ops"


def test_sort_by_flops(open_report):
    rep = make_report(200, seed=5)
    page = open_report(rep)
    page.click('#ops-table th[data-k="flops"] button')
    page.click('#ops-table th[data-k="flops"] button')
    assert page.get_attribute('#ops-table th[data-k="flops"]', "aria-sort") == "descending"
    first = int(page.get_attribute("#ops-table tr.row", "data-i"))
    assert rep["ops"][first]["flops"] == max(o["flops"] for o in rep["ops"])


def test_click_row_highlights_everywhere(open_report):
    rep = make_report(120, seed=1)
    op = next(o for o in rep["ops"] if o["device"] == "cpu" and o["reasons"] and o["reasons"][0]["apple_message"])
    page = open_report(rep)
    click_op(page, op["index"])
    sel = selected(page)
    assert sel["row"] == sel["strip"] == sel["graph"] == str(op["index"])
    assert sel["detail"] == op["name"] and sel["hash"] == f"#op-{op['index']}"
    detail = page.inner_text("#detail")
    r = op["reasons"][0]
    for text in (r["rule"], r["title"], r["message"], r["apple_message"], r["fix"], r["source"]):
        assert text in detail
    # the producer link in the detail panel moves the selection
    page.click("#detail button[data-op] >> nth=0")
    assert selected(page)["row"] == str(op["inputs"][0]["producer"])


def test_click_switch_in_strip_selects_next_op(open_report):
    rep = make_report(10_000, seed=2)
    page = open_report(rep)
    page.click("#zoom-in")
    page.click("#zoom-in")
    page.click("#zoom-in")
    marker = page.locator('#strip .sw[data-n="1"]').first
    s = rep["switches"][int(marker.get_attribute("data-s"))]
    marker.click()
    sel = selected(page)
    assert sel["row"] == sel["strip"] == sel["graph"] == str(s["before"])
    row = page.locator(f'#ops-table tr[data-i="{s["before"]}"]')
    assert row.is_visible()
    # a cluster of switches zooms in instead
    page.click("#zoom-reset")
    cluster = page.locator('#strip .sw:not([data-n="1"])').first
    before = page.get_attribute("#strip svg", "aria-label")
    cluster.click()
    assert page.get_attribute("#strip svg", "aria-label") != before


def test_keyboard_navigation(open_report):
    rep = make_report(400, seed=4)
    page = open_report(rep, scheme="dark")
    page.focus('#ops-table tr[data-i="0"]')
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert selected(page)["row"] == "2"
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    assert selected(page)["row"] == "399"
    assert page.evaluate("document.activeElement.dataset.i") == "399"
    # a switch marker is a button
    page.click("#zoom-reset")
    page.focus('#strip .sw[data-n="1"]')
    s = rep["switches"][int(page.evaluate("document.activeElement.dataset.s"))]
    page.keyboard.press("Enter")
    assert selected(page)["row"] == str(s["before"])
    # graph groups expand with Enter
    page.click("#graph-reset")
    nodes = page.locator("#graph .node").count()
    page.focus("#graph .node.group")
    page.keyboard.press("Enter")
    assert page.locator("#graph .node").count() > nodes
    assert page.evaluate("document.activeElement.classList.contains('node')")


def test_empty_report_loads(open_report):
    page = open_report({"schema_version": "1.0", "kind": "prediction", "ops": []})
    assert shown(page, "ops") == "0"
    assert page.inner_text("#strip") == "No ops."


def test_extra_columns(open_report):
    rep = make_report(40, extra=True)
    rep["ops"][1]["extra"]["psnr_db"] = float("nan")
    page = open_report(rep)
    assert page.locator('#ops-table th[data-k="x:psnr_db"]').count() == 1
    assert page.inner_text('#ops-table tr[data-i="0"] td >> nth=-1') == f'{rep["ops"][0]["extra"]["psnr_db"]:.4g}'
    assert page.inner_text('#ops-table tr[data-i="1"] td >> nth=-1') == "nan"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_10k_ops_stays_virtual_and_interactive(open_report, scheme):
    rep = make_report(10_000, parts=("encoder", "decoder"))
    page = open_report(rep, scheme=scheme)
    assert shown(page, "ops") == "10,000"
    assert page.locator("#ops-table tr.row").count() < 100
    assert page.locator("#graph .node").count() <= 80
    target = 9_123
    page.fill("#f-search", rep["ops"][target]["name"])
    page.click(f'#ops-table tr[data-i="{target}"]')
    sel = selected(page)
    assert sel["row"] == sel["strip"] == sel["graph"] == str(target)
    page.click("#f-clear")
    page.wait_for_selector(f'#ops-table tr[data-i="{target}"]')  # scrolled to the selection
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"10k-{scheme}.png"), full_page=True)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(open_report, mil_report, scheme):
    rep = make_report(90, seed=7, extra=True)
    page = open_report(rep, scheme=scheme)
    op = next(o for o in rep["ops"] if o["device"] == "cpu" and o["reasons"])
    click_op(page, op["index"])
    assert selected(page)["row"] == str(op["index"]) and op["name"] in selected(page)["detail"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = [ARTIFACTS / f"synthetic-{scheme}.png", ARTIFACTS / f"mil-{scheme}.png"]
    page.screenshot(path=str(shots[0]), full_page=True)
    page = open_report(mil_report, scheme=scheme)
    page.click('#ops-table tr[data-i="3"]')
    assert selected(page)["row"] == "3" and mil_report["ops"][3]["name"] in selected(page)["detail"]
    page.screenshot(path=str(shots[1]), full_page=True)
    for shot in shots:  # a real page, not a blank one: a PNG of many colours and some size
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, (shot, len(data))
