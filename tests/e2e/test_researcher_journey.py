"""A new user's first visit, as the README tells it: demo init, hub start, log in, start, run a cell."""


from lnds_spe.hub.lockdown import unique_name
from lnds_spe.projects import open_registry


def test_researcher_logs_in_starts_demo_and_runs_a_cell(browser, demo_hub, tmp_path):
    url, accounts, state = demo_hub
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", "alice")
    page.fill("#password_input", accounts["passwords"]["alice"])
    page.click("#login_submit")

    page.wait_for_selector("#spe-projects")
    assert "demo" in page.inner_text("#spe-projects")
    page.click("#start-demo")
    page.wait_for_selector("#spe-project")  # the spawn form: the project and its images
    page.click("input[type=submit], button[type=submit]")

    page.wait_for_url(f"{url}/user/alice/demo/lab**", timeout=240_000)
    page.click(".jp-LauncherCard[data-category='Notebook']", timeout=120_000)
    # A cell run before the new kernel is connected is dropped: wait until it is idle.
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=180_000)
    cell = page.locator(".jp-Cell .cm-content").first
    cell.click()
    page.keyboard.type("import pandas as pd; df = pd.read_csv('data/survey/survey.csv'); "
                       "print('rows', len(df), 'cols', list(df.columns))")
    page.keyboard.press("Shift+Enter")
    output = page.locator(".jp-OutputArea-output").first
    try:
        output.wait_for(timeout=180_000)
    finally:
        page.screenshot(path=str(tmp_path / "lab.png"))
    assert "rows 2000 cols ['region', 'sex', 'age_band', 'income']" in output.inner_text()
    assert page.get_by_text("official Jupyter news").count() == 0  # no internet, no news prompt

    # The data was decrypted on the hub side for this workspace only, and goes when it stops.
    decrypted = state / "workspaces" / unique_name("alice") / "demo" / "data" / "survey" / "survey.csv"
    assert decrypted.exists()
    page.goto(f"{url}/hub/home")
    page.click("#stop-demo")
    page.wait_for_selector("#start-demo", state="visible", timeout=120_000)
    assert not decrypted.exists()
    registry = open_registry(f"sqlite:///{state / 'spe.sqlite'}")
    actions = [e.action for e in registry.audit.query(project="demo")]
    for done in ("dataset.upload", "dataset.decrypt", "dataset.mount", "workspace.spawn",
                 "workspace.stop"):
        assert done in actions
    assert registry.audit.verify()[1] is None


def test_non_member_sees_no_project_and_is_refused(browser, demo_hub):
    url, accounts, _ = demo_hub
    page = browser.new_context().new_page()
    page.goto(f"{url}/hub/login")
    page.fill("#username_input", "admin")  # an account of the demo, member of no project
    page.fill("#password_input", accounts["passwords"]["admin"])
    page.click("#login_submit")
    page.wait_for_selector("#spe-no-projects")
    page.goto(f"{url}/hub/spawn/admin/demo")
    assert "You have no active project" in page.content()
