"""The interactive HTML report: static checks, then a real headless Chromium driving the page."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from html_browser import chromium_path, finish_report, launch, make_report, png_pixels  # noqa: E402

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
    ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17, skip_model_load=True).save(
        str(path)
    )
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
    rep["panels"] = [
        {"title": "Numerics", "rows": [{"op": "conv_1", "psnr": 41.2}]},
        {"title": "Timings", "html": "<p id='custom-panel'>measured</p>"},
    ]
    rep["future_key"] = {"anything": [1, 2]}
    html = render_html(rep)
    assert "Numerics" in html and "<td>41.2</td>" in html and "id='custom-panel'" in html


def test_page_shows_the_latency_estimate_and_how_far_it_was_checked(mil_report):
    html = render_html(mil_report)
    evidence = mil_report["latency_evidence"]  # the default chip, the A17 Pro, has published latencies
    assert f"~{mil_report['summary']['latency_ms']:.3f} ms" in html and evidence["cases"] > 0
    assert f"checked against {evidence['cases']} published latencies on this chip" in html
    assert "no published latency was measured" in render_html({**mil_report, "latency_evidence": None})
    nearest = mil_report["nearest_published"]  # the published models most like it, with what the estimate gave them
    assert len(nearest) == 2 and f"published models most like it: {nearest[0]['case']} ({nearest[0]['chip']})" in html
    assert f"({nearest[1]['ratio']:.2f}x)" in html and "most like it" not in render_html(
        {**mil_report, "nearest_published": []}
    )


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
    """Scroll the virtual table (rows have measured heights) to op i and click its row."""
    page.evaluate("i => window.anedoctor.reveal(i)", i)
    page.click(f'#ops-table tr[data-i="{i}"]')
    page.wait_for_function(
        "i => document.querySelector('#ops-table tr[aria-selected=true]')?.dataset.i === i", arg=str(i)
    )


def after_two_frames(page) -> None:
    """Return once the page has drawn two more animation frames (a scroll's repaint has happened)."""
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def selected(page) -> dict:
    return page.evaluate("""() => ({
        row: document.querySelector('#ops-table tr[aria-selected=true]')?.dataset.i,
        strip: document.querySelector('#strip .cursor')?.dataset.op,
        graph: document.querySelector('#graph .node.sel')?.dataset.op,
        detail: document.querySelector('#detail h3')?.textContent,
        hash: location.hash})""")


@pytest.mark.parametrize("which", ["mil", "torch", "synthetic"])
def test_counts_shown_equal_json(open_report, request, which):
    rep = {
        "mil": lambda: request.getfixturevalue("mil_report"),
        "torch": lambda: request.getfixturevalue("torch_report"),
        "synthetic": lambda: make_report(60, parts=("encoder", "decoder")),
    }[which]()
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
    marked = page.evaluate("[...document.querySelectorAll('#strip .sw')].reduce((n, g) => n + +g.dataset.n, 0)")
    assert marked == s["switches"]
    page.click("#switch-list summary")  # the list fills on the details' "toggle" event, which fires later
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect(page.locator("#switch-list li")).to_have_count(s["switches"])
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
    assert page.locator("#ops-table tr.row.dev-ane").count() == 0
    page.click("#f-clear")
    page.select_option("#f-rule", "OP-1")
    expect = [o["index"] for o in ops if any(r["rule"] == "OP-1" for r in o["reasons"] + o["notes"])]
    assert count_text(page) == f"Showing {len(expect)} of 300 ops"
    drawn = page.eval_on_selector_all("#ops-table tr.row", "rs => rs.map(r => +r.dataset.i)")
    assert len(drawn) >= min(10, len(expect)) and drawn == expect[: len(drawn)]  # virtual rows: the first ones
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
    hits = sum(any(r["rule"] == top for r in o["reasons"] + o["notes"]) for o in ops)
    assert count_text(page) == f"Showing {hits} of 300 ops"


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


def test_row_press_selects_even_if_the_table_repaints_before_release(open_report):
    """A scroll in the frame of a press repaints the virtual rows; the row pressed is still the one selected."""
    rep = make_report(400, seed=3)
    page = open_report(rep)
    page.evaluate("i => window.anedoctor.reveal(i)", 200)
    row = page.locator('#ops-table tr[data-i="200"]')
    row.scroll_into_view_if_needed()
    after_two_frames(page)
    box = row.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.evaluate("() => { document.querySelector('#ops-table').parentElement.scrollTop += 1; }")
    after_two_frames(page)  # the scroll event repaints the rows on the next frame, replacing the one pressed
    page.mouse.up()
    assert selected(page)["row"] == "200"
    assert page.evaluate("document.activeElement.dataset.i") == "200"


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
    # arrow keys walk the graph: down reaches a node lower on the page, up comes back
    y = "document.activeElement.getBoundingClientRect().top"
    which = "(d => d.op ?? d.g ?? d.close)(document.activeElement.dataset)"
    first, start = page.evaluate(which), page.evaluate(y)
    page.keyboard.press("ArrowDown")
    assert page.evaluate(y) > start and page.evaluate(which) != first
    page.keyboard.press("ArrowUp")
    assert first is not None and page.evaluate(which) == first
    # the column chooser closes with Escape
    page.click("#f-cols summary")
    page.keyboard.press("Escape")
    assert page.evaluate("document.querySelector('#f-cols').open") is False


def test_empty_report_loads(open_report):
    page = open_report({"schema_version": "1.0", "kind": "prediction", "ops": []})
    assert shown(page, "ops") == "0"
    assert page.inner_text("#strip") == "No ops."


def test_extra_columns(open_report):
    rep = make_report(40, extra=True)
    rep["ops"][1]["extra"]["psnr_db"] = float("nan")
    page = open_report(rep)
    assert page.locator('#ops-table th[data-k="x:psnr_db"]').count() == 1
    assert page.inner_text('#ops-table tr[data-i="0"] td >> nth=-1') == f"{rep['ops'][0]['extra']['psnr_db']:.4g}"
    assert page.inner_text('#ops-table tr[data-i="1"] td >> nth=-1') == "nan"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_10k_ops_stays_virtual_and_interactive(open_report, scheme):
    rep = make_report(10_000, parts=("encoder", "decoder"))
    page = open_report(rep, scheme=scheme)
    assert shown(page, "ops") == "10,000"
    assert page.locator("#ops-table tr.row").count() < 100
    assert page.locator("#graph .node").count() <= 80
    labels = page.eval_on_selector_all("#graph [data-path]", "gs => gs.map(g => g.dataset.path)")
    assert labels and not any(re.fullmatch(r"ops \d+–\d+", x) for x in labels)  # named groups, not number ranges
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


# ---------- daily use at 1440 px: the table fits, the graph reads top to bottom, findings come first ----------

LONG_REASON = (
    "dilation (8, 8) makes the 3x3 kernel 17x17 wide, past the 15 taps the Neural Engine accepts; "
    "factor it into a stack of dilation-2 convs. "
) * 3


def ink(page, png: bytes, points) -> bool:
    """Whether any of these points of the screenshot is dark text on the light page."""
    return any(sum(rgb) < 300 for rgb in png_pixels(page, png, points))


def test_table_fits_1440_and_wraps_reasons(open_report):
    rep = make_report(200, seed=6, extra=True)
    op = next(o for o in rep["ops"] if o["device"] == "cpu" and o["reasons"])
    op["reasons"][0] = {**op["reasons"][0], "message": LONG_REASON.strip()}
    for o in rep["ops"]:  # what `numerics` adds: the first two extra columns show, the others wait in the chooser
        o["extra"].update({"fp16 rel err": 1e-3 * o["index"], "fp32 |max|": 7.5 * o["index"]})
    page = open_report(rep, width=1440)
    click_op(page, op["index"])
    measure = """i => {
        const w = document.querySelector('#table-wrap'), box = w.getBoundingClientRect();
        const cell = document.querySelector(`#ops-table tr[data-i="${i}"] td.rules`), c = cell.getBoundingClientRect();
        const th = k => { const r = document.querySelector(`#ops-table th[data-k="${k}"]`)?.getBoundingClientRect();
                          return r ? [r.left - box.left, box.right - r.right, r.width] : null; };
        return {scroll: w.scrollWidth, client: w.clientWidth, text: cell.innerText,
                cell: [cell.scrollWidth, cell.clientWidth, cell.scrollHeight, cell.clientHeight],
                box: [c.left - box.left, c.top - box.top, c.width, c.height],
                inside: c.left >= box.left && c.right <= box.right,
                cols: Object.fromEntries(["index", "name", "type", "device", "reasons", "flops", "bytes", "cost",
                                          "x:psnr_db", "x:fp16 rel err"].map(k => [k, th(k)]))};
    }"""
    fit = page.evaluate(measure, op["index"])
    assert fit["scroll"] <= fit["client"], fit  # no horizontal scrollbar
    for key, col in fit["cols"].items():  # every key column shown whole inside the box
        assert col is not None and col[0] >= 0 and col[1] >= 0 and col[2] >= 40, (key, col)
    sw, cw, sh, ch = fit["cell"]
    assert sw <= cw and sh <= ch and fit["inside"], fit["cell"]  # the long reason wraps, nothing clipped
    assert " ".join(LONG_REASON.split()) in " ".join(fit["text"].split())
    assert fit["box"][3] > 4 * 18  # several lines tall
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = page.locator("#table-wrap").screenshot(path=str(ARTIFACTS / "table-1440.png"))
    fit = page.evaluate(measure, op["index"])  # after the screenshot scrolled the box into view
    x, y, w, h = fit["box"]
    assert ink(page, shot, [(x + 8 + k, y + h - 13) for k in range(0, int(w / 2), 2)])  # the last line is drawn
    cost = fit["cols"]["cost"]
    assert ink(page, shot, [(cost[0] + k, y + 14) for k in range(4, int(cost[2]) - 4, 2)])  # and the ms value
    # the column chooser hides and adds columns; the table still fits
    page.click("#f-cols summary")
    page.uncheck('#f-cols input[value="bytes"]')
    page.check('#f-cols input[value="inputs"]')
    assert page.locator('#ops-table th[data-k="x:fp32 |max|"]').count() == 0
    assert page.locator('#ops-table th[data-k="bytes"]').count() == 0
    assert page.locator('#ops-table th[data-k="inputs"]').count() == 1
    assert page.locator(f'#ops-table tr[data-i="{op["index"]}"] td').count() == len(fit["cols"])
    fit = page.evaluate(measure, op["index"])
    assert fit["scroll"] <= fit["client"] and fit["cell"][2] <= fit["cell"][3]


def rect(page, selector: str) -> list[float]:
    """[left, top, width, height] of the first element matching selector."""
    return page.eval_on_selector(
        selector, "e => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }"
    )


def _node_boxes(page) -> dict:
    """{op index or group id: [left, top, right, bottom]} of every graph node."""
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#graph .node')].map(n => {
        const r = n.getBoundingClientRect();
        return [n.dataset.op ?? n.dataset.g, [r.left, r.top, r.right, r.bottom]]; }))""")


def _diamond() -> dict:
    """stem -> (left | right -> relu) -> merge -> head: two branches side by side."""
    ops = []
    layout = [
        ("stem", "conv", [None]),
        ("left", "conv", [0]),
        ("right", "max_pool", [0]),
        ("relu", "relu", [2]),
        ("merge", "add", [1, 3]),
        ("head", "linear", [4]),
    ]
    for i, (name, typ, producers) in enumerate(layout):
        ops.append(
            {
                "index": i,
                "name": name,
                "type": typ,
                "part": "main",
                "device": "ane",
                "supported": {"ane": True, "gpu": True, "cpu": True},
                "reasons": [],
                "notes": [],
                "flops": 1000,
                "bytes": 100,
                "cost_ms": {"ane": 0.01, "gpu": 0.02, "cpu": 0.1},
                "extra": {},
                "inputs": [
                    {"name": f"t{p}", "dtype": "fp16", "shape": [1, 8], "producer": p, "const": False}
                    for p in producers
                ],
                "outputs": [{"name": f"t{i}", "dtype": "fp16", "shape": [1, 8]}],
            }
        )
    return finish_report(ops)


def test_graph_layers_follow_dataflow_top_to_bottom(open_report):
    page = open_report(_diamond(), width=1440)
    b = _node_boxes(page)
    assert set(b) == {str(i) for i in range(6)}
    top = {k: v[1] for k, v in b.items()}
    assert top["1"] == top["2"] and (b["1"][2] <= b["2"][0] or b["2"][2] <= b["1"][0])  # one layer, side by side
    assert b["0"][3] <= top["1"] and b["2"][3] <= top["3"] and max(b["1"][3], b["3"][3]) <= top["4"] <= b["4"][1]
    assert b["4"][3] <= top["5"]
    # a larger model (groups, skip connections): every drawn edge runs from a producer down to its consumer
    page = open_report(make_report(300, seed=4), width=1440)
    b = _node_boxes(page)
    edges = page.eval_on_selector_all("#graph .edge", "es => es.map(e => [e.dataset.a, e.dataset.b])")
    assert len(edges) > 20
    for a, c in edges:
        assert b[c][1] >= b[a][3], (a, c, b[a], b[c])


def test_graph_groups_by_module_path_and_collapses(open_report):
    rep = make_report(600, seed=2, module_paths=True)
    paths = [o["source"]["module_path"] for o in rep["ops"]]
    page = open_report(rep, width=1440)
    groups = page.eval_on_selector_all("#graph [data-path]", "gs => gs.map(g => [g.dataset.g, g.dataset.path])")
    assert groups
    for gid, path in groups:  # a group holds exactly the ops of one module (the op names say nothing)
        lo, hi = map(int, gid.split("-"))
        assert all(p == path or p.startswith(path + ".") for p in paths[lo : hi + 1]), (gid, path)
        assert lo == 0 or not paths[lo - 1].startswith(path)  # and nothing of it is left outside
        assert hi + 1 == len(paths) or not paths[hi + 1].startswith(path)
    ranges = [tuple(map(int, g.split("-"))) for g, _ in groups]
    outer = sorted(
        p
        for (g, p), (lo, hi) in zip(groups, ranges)
        if not any(a <= lo and hi <= b and (a, b) != (lo, hi) for a, b in ranges)
    )
    assert outer == sorted(f"main.layers.{n}" for n in range(25))
    assert rect(page, "#graph")[1] - rect(page, "#h-graph")[1] < 90  # no wall of chips above the graph
    # an open module collapses when its header is clicked, and opens again on a click
    head = page.locator('#graph .frame[data-path="main.layers.3"] .fhead')
    gid = head.get_attribute("data-close")
    before = page.locator("#graph .node").count()
    head.click()
    assert page.locator('#graph .frame[data-path="main.layers.3"]').count() == 0
    node = page.locator(f'#graph .node.group[data-g="{gid}"]')
    assert node.get_attribute("aria-expanded") == "false" and page.locator("#graph .node").count() < before
    node.click()
    assert page.locator('#graph .frame[data-path="main.layers.3"]').count() == 1
    assert page.locator("#graph .node").count() == before
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = page.locator("#graph").screenshot(path=str(ARTIFACTS / "graph-modules.png"))
    # what the picture shows: the module headers as text, an ANE-coloured bar in every group
    g = rect(page, "#graph")
    head = rect(page, '#graph .frame[data-path="main.layers.0"] .fhead text')
    assert ink(page, shot, [(head[0] - g[0] + k, head[1] - g[1] + head[3] / 2) for k in range(0, int(head[2]), 2)])
    bar = rect(page, "#graph .node.group rect.p-ane")
    assert png_pixels(page, shot, [(bar[0] - g[0] + 3, bar[1] - g[1] + 2)]) == [(0x00, 0x44, 0x88)]


def test_panels_come_right_after_the_summary(open_report):
    rep = make_report(300, seed=8)
    rep["panels"] = [
        {
            "title": "fp16 numerics (emulated ANE)",
            "rows": [
                {"kind": "overflow", "op": rep["ops"][7]["name"], "message": "fp16 overflow: |x| reaches 7.1e+04"}
            ],
        }
    ]
    page = open_report(rep, width=1440)
    y = {
        k: rect(page, sel)[1]
        for k, sel in [
            ("summary", "#h-summary"),
            ("panel", ".panel h2"),
            ("fix", "#h-fix"),
            ("graph", "#h-graph"),
            ("table", "#ops-table"),
        ]
    }
    assert y["summary"] < y["panel"] < y["fix"] < y["graph"] < y["table"], y
    assert y["panel"] < 900  # on the first screen at 1440x900
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = page.screenshot(path=str(ARTIFACTS / "first-screen-1440.png"))
    cell = rect(page, ".panel td:last-child")  # its finding is drawn on the first screen
    assert ink(page, shot, [(cell[0] + k, cell[1] + cell[3] / 2) for k in range(0, int(cell[2]), 2)])
