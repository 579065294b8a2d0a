"""The explore page's interface in Chromium: controls, URL state, keyboard, bad input, layout.

Each test drives the page as a reader would (clicks, keys, the address) and reads back
what it did through ``window.ravineExplore`` (the state, the runs, what was drawn) and the
canvases' pixels. The screenshots at 1280×800 and 390×844 are saved under
``out/explore/screenshots/`` for review.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "explore" / "screenshots"

# A canvas's pixels, read from a copy (reading the page's own canvases again and again would
# make Chromium warn on the console): how many pixels have exactly `rgb`, and a checksum.
PIXELS = """
([id, rgb]) => {
  const source = document.getElementById(id);
  const copy = document.createElement("canvas");
  copy.width = source.width;
  copy.height = source.height;
  const ctx = copy.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(source, 0, 0);
  const data = ctx.getImageData(0, 0, copy.width, copy.height).data;
  let count = 0, painted = 0, sum = 0;
  const same = (i) => data[i] === rgb[0] && data[i + 1] === rgb[1] && data[i + 2] === rgb[2];
  for (let i = 0; i < data.length; i += 4) {
    if (rgb && same(i) && data[i + 3] === 255) count++;
    if (data[i + 3] > 0) painted++;
    sum = (sum * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2] + 17 * data[i + 3]) % 1000000007;
  }
  return { count, painted, sum };
}
"""


def ready(page: Any) -> None:
    page.wait_for_function("() => window.ravineExplore && window.ravineExplore.drawn().length > 0")


def settle(page: Any) -> None:
    """Run the pending frame and write the address now (instead of on the next frame/timer)."""
    page.evaluate("() => window.ravineExplore.flush()")


def state(page: Any) -> dict[str, Any]:
    settle(page)
    return page.evaluate("() => window.ravineExplore.state()")


def run(page: Any, name: str) -> dict[str, Any]:
    settle(page)
    return page.evaluate(
        "(name) => { const r = window.ravineExplore.run(name);"
        " return {theta: r.theta, diverged: r.diverged}; }",
        name,
    )


def pixels(page: Any, canvas: str, rgb: tuple[int, int, int] | None = None) -> dict[str, int]:
    settle(page)
    return page.evaluate(PIXELS, [canvas, list(rgb) if rgb else None])


def commit(page: Any, selector: str, text: str) -> None:
    """Type into a text field and press Enter (its change event)."""
    page.fill(selector, text)
    page.press(selector, "Enter")


@pytest.fixture
def ui(page: Any) -> Any:
    ready(page.page)
    return page


def test_the_page_draws_all_nine_with_labelled_controls(ui: Any) -> None:
    p = ui.page
    assert p.evaluate("() => window.ravineExplore.drawn()") == [
        "SGD", "Momentum", "NAG", "NormalizedGD", "Adagrad", "RMSProp", "AdaDelta", "Adam", "NAdam",
    ]  # fmt: skip
    assert pixels(p, "paths")["painted"] > 2000
    assert pixels(p, "contours")["painted"] > 100000
    assert p.locator("#legend li").count() == 9
    # every control has a name a screen reader can say
    unlabelled = p.evaluate(
        """() => [...document.querySelectorAll("input, select, button, [tabindex='0']")]
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                          && !el.getAttribute("aria-labelledby") && !el.textContent.trim())
          .map((el) => el.outerHTML.slice(0, 80))"""
    )
    assert unlabelled == []
    # the three captions follow the seed's story with this view's numbers
    captions = p.inner_text("#captions")
    assert "Zig-zag" in captions and "Steps to tolerance" in captions
    assert "Where Adagrad stalls" in captions
    assert ui.foreign_requests() == []


def test_moving_an_lr_slider_changes_that_trajectory_only(ui: Any) -> None:
    p = ui.page
    before = {n: run(p, n)["theta"] for n in ("SGD", "Adam")}
    drawn = pixels(p, "paths")["sum"]
    p.focus("#SGD-lr")
    for _ in range(5):
        p.keyboard.press("ArrowLeft")
    after = state(p)
    assert after["hp"]["SGD"]["lr"] < 0.036
    assert p.input_value("#SGD-lr-value") == str(after["hp"]["SGD"]["lr"])
    assert run(p, "SGD")["theta"] != before["SGD"]
    assert run(p, "Adam")["theta"] == before["Adam"]
    assert pixels(p, "paths")["sum"] != drawn


def test_typing_a_value_sets_it_and_a_bad_one_is_refused(ui: Any) -> None:
    p = ui.page
    commit(p, "#Momentum-beta-value", "0.5")
    assert state(p)["hp"]["Momentum"]["beta"] == 0.5
    commit(p, "#Momentum-beta-value", "1.5")
    assert state(p)["hp"]["Momentum"]["beta"] == 0.5
    assert p.is_visible("#notice")
    assert "invalid beta=1.5" in p.inner_text("#notice")
    assert p.get_attribute("#Momentum-beta-value", "aria-invalid") == "true"


def test_toggling_an_optimizer_hides_its_path(ui: Any) -> None:
    p = ui.page
    vermillion = (0xD5, 0x5E, 0x00)  # Adam's colour
    assert pixels(p, "paths", vermillion)["count"] > 20
    p.click("label[for=on-Adam]")
    assert "Adam" not in p.evaluate("() => window.ravineExplore.drawn()")
    assert pixels(p, "paths", vermillion)["count"] == 0
    assert "off" in p.inner_text("#legend-Adam")
    p.click("label[for=on-Adam]")
    assert pixels(p, "paths", vermillion)["count"] > 20


def test_changing_the_surface_changes_the_contours_and_its_sliders(ui: Any) -> None:
    p = ui.page
    valley = pixels(p, "contours")["sum"]
    p.select_option("#surface", "rosenbrock")
    assert state(p)["surface"] == "rosenbrock"
    assert pixels(p, "contours")["sum"] != valley
    assert p.locator("#param-kappa").count() == 0
    assert p.locator("#param-b").count() == 1
    # a surface parameter redraws the contours too
    before = pixels(p, "contours")["sum"]
    commit(p, "#param-b-value", "10")
    assert state(p)["params"]["b"] == 10
    assert pixels(p, "contours")["sum"] != before
    assert "surface=rosenbrock" in p.url and "b=10" in p.url


def test_the_start_point_moves_with_the_mouse_the_keys_and_the_fields(ui: Any) -> None:
    p = ui.page
    x0, y0 = state(p)["start"]
    p.focus("#handle")
    p.keyboard.press("ArrowRight")
    p.keyboard.press("ArrowUp")
    x1, y1 = state(p)["start"]
    assert x1 > x0 and y1 > y0
    box = p.locator("#handle").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    p.mouse.move(cx, cy)
    p.mouse.down()
    p.mouse.move(cx + 60, cy + 30, steps=4)
    p.mouse.up()
    x2, y2 = state(p)["start"]
    assert x2 > x1 and y2 < y1
    assert run(p, "SGD")["theta"][0] == [x2, y2]
    commit(p, "#start-x", "-5")
    commit(p, "#start-y", "1.5")
    assert state(p)["start"] == [-5, 1.5]
    assert run(p, "Adam")["theta"][0] == [-5, 1.5]


def test_the_keyboard_reaches_and_operates_every_kind_of_control(ui: Any) -> None:
    p = ui.page
    p.set_viewport_size({"width": 1280, "height": 800})
    reached, outlines = [], {}
    for _ in range(140):
        p.keyboard.press("Tab")
        here = p.evaluate(
            """() => { const el = document.activeElement; const s = getComputedStyle(el);
              return [el.id, s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
        )
        reached.append(here[0])
        outlines[here[0]] = here[1:]
    wanted = ["handle", "play", "scrub", "surface", "param-kappa", "param-kappa-value", "tune",
              "start-x", "steps", "on-SGD", "SGD-lr", "Momentum-beta", "NAG-lookahead",
              "Adam-eps_mode", "show"]  # fmt: skip
    assert [w for w in wanted if w not in reached] == []
    # focus is visible on each (an outline of at least 2 px)
    for w in wanted:
        style, width = outlines[w]
        assert style != "none" and width >= 2, (w, style, width)
    # arrow keys move a slider
    p.focus("#Momentum-beta")
    p.keyboard.press("ArrowRight")
    assert state(p)["hp"]["Momentum"]["beta"] > 0.9
    # and the scrubber: Home shows step 0, End the last
    p.focus("#scrub")
    p.keyboard.press("Home")
    assert state(p)["step"] == 0
    p.keyboard.press("ArrowRight")
    assert state(p)["step"] == 1
    p.keyboard.press("End")
    assert state(p)["step"] is None
    # a checkbox from the keyboard
    p.focus("#on-NAG")
    p.keyboard.press("Space")
    assert "NAG" not in state(p)["on"]


def test_the_address_holds_the_whole_view(ui: Any) -> None:
    p = ui.page
    commit(p, "#param-kappa-value", "20")
    commit(p, "#param-rotation-value", "0.3")
    commit(p, "#start-x", "-7")
    commit(p, "#steps", "120")
    p.click("label[for=on-NAG]")
    commit(p, "#Adam-lr-value", "0.05")
    p.select_option("#NAG-lookahead", "momentum")
    p.uncheck("#Momentum-ema")
    p.select_option("#Adam-eps_mode", "hat")
    p.select_option("#show", "Adam")
    p.focus("#scrub")
    p.keyboard.press("Home")
    for _ in range(3):
        p.keyboard.press("ArrowRight")
    view = state(p)
    assert view["params"] == {"kappa": 20, "rotation": 0.3}
    assert view["steps"] == 120 and view["step"] == 3 and view["show"] == "Adam"
    assert view["start"][0] == -7
    url = p.url
    assert "kappa=20" in url and "Adam.eps_mode=hat" in url and "step=3" in url
    # a reload from the address, and a fresh tab with the link, show the same view
    p.reload()
    ready(p)
    assert state(p) == view
    other = p.context.new_page()
    ui.watch(other)
    other.goto(url)
    ready(other)
    assert state(other) == view
    assert run(other, "Adam")["theta"] == run(p, "Adam")["theta"]
    other.close()


def test_back_and_forward_restore_earlier_views(ui: Any) -> None:
    p = ui.page
    commit(p, "#Adam-lr-value", "0.05")
    settle(p)
    p.select_option("#surface", "booth")
    settle(p)
    assert state(p)["surface"] == "booth"
    p.go_back()
    p.wait_for_function("() => window.ravineExplore.state().surface === 'valley'")
    assert state(p)["hp"]["Adam"]["lr"] == 0.05
    assert p.input_value("#surface") == "valley"
    p.go_back()
    p.wait_for_function("() => window.ravineExplore.state().hp.Adam.lr === 0.1")
    assert p.input_value("#Adam-lr-value") == "0.1"
    p.go_forward()
    p.wait_for_function("() => window.ravineExplore.state().hp.Adam.lr === 0.05")
    p.go_forward()
    p.wait_for_function("() => window.ravineExplore.state().surface === 'booth'")
    assert p.is_hidden("#notice")


def test_a_bad_address_shows_messages_and_falls_back_field_by_field(ui: Any) -> None:
    p = ui.page
    bad = (
        "#surface=nowhere&kappa=0&SGD.lr=-1&Adam.beta=NaN&on=SGD,Bogus,Adam&steps=abc"
        "&show=Nope&Foo.lr=1&NAG.lookahead=sideways&start=1,x&Momentum.lr=0.02"
    )
    p.goto(ui.url + bad)
    ready(p)
    assert p.is_visible("#notice")
    notice = p.inner_text("#notice")
    for said in [
        "unknown surface “nowhere”",
        "valley: invalid kappa=0",
        "SGD: invalid lr=-1",
        "Adam: invalid beta=NaN",
        "unknown optimizer “Bogus”",
        "invalid steps=abc",
        "“Nope”",
        "unknown optimizer “Foo”",
        "NAG: invalid lookahead='sideways'",
        "invalid start",
    ]:
        assert said in notice, said
    view = state(p)
    assert view["surface"] == "valley" and view["params"]["kappa"] == 50
    assert view["hp"]["SGD"]["lr"] == 0.036 and view["hp"]["Adam"]["beta"] == 0.9
    assert view["hp"]["NAG"]["lookahead"] == "step"
    assert view["hp"]["Momentum"]["lr"] == 0.02  # the good field is kept
    assert view["on"] == ["SGD", "Adam"] and view["steps"] == 300
    assert p.evaluate("() => window.ravineExplore.drawn()") == ["SGD", "Adam"]
    assert pixels(p, "paths")["painted"] > 500
    # the address now says what is shown
    assert "SGD.lr=0.036" in p.url and "nowhere" not in p.url
    p.click("#notice-close")
    assert p.is_hidden("#notice")


def test_a_diverging_run_is_drawn_to_its_last_finite_point_and_labelled(ui: Any) -> None:
    p = ui.page
    commit(p, "#SGD-lr-value", "0.5")
    r = run(p, "SGD")
    k = r["diverged"]
    assert k is not None and k > 1
    assert all(math.isfinite(v) for v in r["theta"][k - 1])
    assert f"diverged at step {k}" in p.inner_text("#legend-SGD")
    assert f"diverges at step {k}" in p.inner_text("#captions")
    assert pixels(p, "paths", (0, 0, 0))["count"] > 10  # SGD (black) is still drawn


def test_play_and_pause_walk_the_steps(ui: Any) -> None:
    p = ui.page
    p.click("#play")
    p.wait_for_function("() => (window.ravineExplore.state().step || 0) > 5")
    p.click("#play")
    paused = state(p)["step"]
    p.wait_for_timeout(200)
    assert state(p)["step"] == paused
    assert p.input_value("#scrub") == str(paused)
    assert f"step {paused} of 300" in p.inner_text("#scrub-out")


def test_the_tuned_preset_is_the_pages_own_search(ui: Any) -> None:
    p = ui.page
    commit(p, "#steps", "100")
    p.click("#tune")
    p.wait_for_function(
        "() => document.getElementById('tune-note').textContent.startsWith('Tuned')",
        timeout=120_000,
    )
    view = state(p)
    expected = p.evaluate(
        """() => window.RAVINE_ANALYSIS.tune({optimizer: "SGD",
             surface: {name: "valley", kappa: 50, rotation: 0}, start: [-9, 2], steps: 100}).lr"""
    )
    assert view["hp"]["SGD"]["lr"] == expected != 0.036
    assert "computed in this page" in p.inner_text("#tune-note")


def test_the_map_fills_in_and_a_click_sets_lr_and_beta(ui: Any) -> None:
    p = ui.page
    p.wait_for_function(
        "() => document.getElementById('map-status').textContent.startsWith('Measured')",
        timeout=120_000,
    )
    canvas = p.locator("#maps canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    before = run(p, "Momentum")["theta"]
    p.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    view = state(p)
    assert view["hp"]["Momentum"]["lr"] != 0.036 and view["hp"]["Momentum"]["beta"] != 0.9
    assert 0 <= view["hp"]["Momentum"]["beta"] < 1
    assert run(p, "Momentum")["theta"] != before
    assert p.input_value("#Momentum-beta-value") == str(view["hp"]["Momentum"]["beta"])
    canvas.focus()
    p.keyboard.press("ArrowUp")
    assert state(p)["hp"]["Momentum"]["beta"] > view["hp"]["Momentum"]["beta"]
    # off the valley the map says where it lives
    p.select_option("#surface", "booth")
    settle(p)
    assert p.is_hidden("#maps")
    assert "valley" in p.inner_text("#map-status")


@pytest.mark.parametrize(("width", "height"), [(1280, 800), (390, 844)])
def test_screenshots_and_layout(ui: Any, width: int, height: int) -> None:
    p = ui.page
    p.set_viewport_size({"width": width, "height": height})
    p.reload()
    ready(p)
    p.wait_for_function(
        "() => document.getElementById('map-status').textContent.startsWith('Measured')",
        timeout=120_000,
    )
    settle(p)
    # nothing wider than the screen: no scrolling sideways, no control past the edge
    assert p.evaluate("() => document.documentElement.scrollWidth") <= width
    past_the_edge = p.evaluate(
        """() => [...document.querySelectorAll("input, select, button, canvas, p, li")]
          .filter((el) => el.getClientRects().length)
          .filter((el) => el.getBoundingClientRect().right > innerWidth)
          .map((el) => el.id || el.outerHTML.slice(0, 60))"""
    )
    assert past_the_edge == []
    plot = p.locator("#plot").bounding_box()
    assert plot["x"] >= 0 and plot["x"] + plot["width"] <= width
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    p.screenshot(path=str(SCREENSHOTS / f"explore-{width}x{height}.png"))
    p.screenshot(path=str(SCREENSHOTS / f"explore-{width}x{height}-full.png"), full_page=True)


@pytest.mark.parametrize(
    "how", ["typed", "address", "rosenbrock"], ids=["typed", "address", "rosenbrock"]
)
def test_a_start_whose_loss_is_infinite_is_labelled_not_a_crash(ui: Any, how: str) -> None:
    p = ui.page
    if how == "typed":
        commit(p, "#start-x", "1e200")
    elif how == "address":
        p.goto(ui.url + "#start=1e308,1e308")
        ready(p)
    else:
        p.select_option("#surface", "rosenbrock")
        commit(p, "#start-y", "1e160")
    settle(p)
    p.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
    settle(p)
    for name in ["SGD", "Adam"]:
        assert run(p, name)["diverged"] == 0
        assert "diverged at step 0" in p.inner_text(f"#legend-{name}")
    assert "diverged at step 0" in p.inner_text("#internals")
    assert "diverges at step 0" in p.inner_text("#captions") or how == "rosenbrock"
    assert pixels(p, "contours")["painted"] > 1000  # the page is drawn, not blank
    assert ui.errors == []


@pytest.mark.parametrize("field", ["on=Foo", "on=", "on=Foo,Bar"])
def test_an_on_field_with_no_known_optimizer_falls_back_to_all_nine(ui: Any, field: str) -> None:
    p = ui.page
    p.goto(ui.url + "#surface=booth&" + field)
    ready(p)
    assert len(state(p)["on"]) == 9
    assert "invalid on=" in p.inner_text("#notice")
    assert state(p)["surface"] == "booth"  # the other fields are kept


def test_on_none_is_a_valid_view(ui: Any) -> None:
    p = ui.page
    p.goto(ui.url + "#surface=booth&on=none")
    p.wait_for_function("() => window.ravineExplore !== undefined")
    assert state(p)["on"] == []
    assert p.is_hidden("#notice")


def test_a_bad_option_value_names_its_default_as_itself(ui: Any) -> None:
    p = ui.page
    p.goto(ui.url + "#Momentum.ema=maybe&Adam.eps_mode=sideways")
    ready(p)
    notice = p.inner_text("#notice")
    assert "using ema = " in notice and "using eps_mode = " in notice
    assert "∞" not in notice
    default = p.evaluate("() => window.ravineLab.optimizers.find((o) => o.name === 'Adam')")
    assert f"using eps_mode = {default['defaults']['eps_mode']}" in notice


def test_the_tuned_note_is_reset_once_a_listed_lr_changes(ui: Any) -> None:
    p = ui.page
    commit(p, "#steps", "60")
    p.click("#tune")
    tuned = "() => document.getElementById('tune-note').textContent.startsWith('Tuned')"
    p.wait_for_function(tuned, timeout=120_000)
    settle(p)
    assert p.evaluate(tuned)
    # an lr slider
    p.focus("#Adam-lr")
    p.keyboard.press("ArrowRight")
    settle(p)
    assert not p.evaluate(tuned)
    # Back to the tuned values: the note does not come back with stale numbers either
    p.click("#tune")
    p.wait_for_function(tuned, timeout=120_000)
    settle(p)
    p.go_back()
    p.wait_for_function(f"() => !({tuned[6:]})")


TOUCH = """
([type, target, x, y]) => {
  const el = document.getElementById(target);
  el.dispatchEvent(new PointerEvent(type, {pointerId: 7, pointerType: "touch", isPrimary: true,
    button: type === "pointermove" ? -1 : 0, clientX: x, clientY: y, bubbles: true,
    cancelable: true}));
}
"""


def test_a_swipe_on_the_plot_does_not_move_the_start_but_a_tap_does(ui: Any) -> None:
    p = ui.page
    box = p.locator("#plot").bounding_box()
    x, y = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
    before = state(p)["start"]
    # a swipe (the page scrolls: the browser cancels the pointer)
    p.evaluate(TOUCH, ["pointerdown", "paths", x, y])
    p.evaluate(TOUCH, ["pointermove", "paths", x, y - 40])
    p.evaluate(TOUCH, ["pointercancel", "paths", x, y - 80])
    assert state(p)["start"] == before
    # a swipe that ends with pointerup
    p.evaluate(TOUCH, ["pointerdown", "paths", x, y])
    p.evaluate(TOUCH, ["pointermove", "paths", x, y - 40])
    p.evaluate(TOUCH, ["pointerup", "paths", x, y - 80])
    assert state(p)["start"] == before
    # a tap
    p.evaluate(TOUCH, ["pointerdown", "paths", x, y])
    p.evaluate(TOUCH, ["pointerup", "paths", x, y])
    tapped = state(p)["start"]
    assert tapped != before
    # a drag from the handle moves it
    h = p.locator("#handle").bounding_box()
    hx, hy = h["x"] + h["width"] / 2, h["y"] + h["height"] / 2
    p.evaluate(TOUCH, ["pointerdown", "handle", hx, hy])
    p.evaluate(TOUCH, ["pointermove", "handle", hx + 50, hy + 30])
    p.evaluate(TOUCH, ["pointerup", "handle", hx + 50, hy + 30])
    assert state(p)["start"] != tapped
