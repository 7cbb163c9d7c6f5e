"""/reports: reports stored with the prediction log, opened in a browser; bad input refused."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.serving.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}
HTML = "<html><body><h1>window 12:00-13:00</h1><p>13 of 13 expectations met</p></body></html>"


def test_a_stored_report_opens_as_html_and_a_rerun_replaces_it(iris: TestClient) -> None:
    name = "validation/driftloop_drift_monitor__scheduled__2030-01-01T12_00_00_00_00.html"
    put = iris.put(f"/reports/{name}", content=HTML,
                   headers={**AUTH, "Content-Type": "text/html; charset=utf-8"})
    assert put.status_code == 201, put.text
    assert put.json() == {"name": name, "url": f"/reports/{name}", "bytes": len(HTML),
                          "content_type": "text/html"}
    got = iris.get(f"/reports/{name}")
    assert got.status_code == 200 and got.text == HTML
    assert got.headers["content-type"].startswith("text/html")
    again = iris.put(f"/reports/{name}", content="<p>rerun</p>", headers=AUTH)
    assert again.status_code == 201
    assert iris.get(f"/reports/{name}").text == "<p>rerun</p>"
    listed = iris.get("/reports", params={"prefix": "validation/"}).json()["reports"]
    assert listed == [{"name": name, "url": f"/reports/{name}", "bytes": 12}]


def test_bad_reports_are_refused_and_nothing_is_stored(iris: TestClient) -> None:
    cases = [
        ("/reports/a.html", {}, "text/html", 401, "missing bearer token"),
        ("/reports/a.html", {"Authorization": "Bearer wrong"}, "text/html", 403,
         "wrong bearer token"),
        ("/reports/a/%2E%2E/b.html", AUTH, "text/html", 422, "is not valid"),
        ("/reports/a//b.html", AUTH, "text/html", 422, "path.name: String should match"),
        ("/reports/a%20b.html", AUTH, "text/html", 422, "path.name: String should match"),
        ("/reports/a.exe", AUTH, "application/octet-stream", 422,
         "content type 'application/octet-stream' is not stored"),
    ]
    for path, headers, kind, status, words in cases:
        response = iris.put(path, content=b"x", headers={**headers, "Content-Type": kind})
        assert response.status_code == status, (path, response.text)
        assert words in response.json()["detail"], (path, response.json())
    assert iris.get("/reports").json() == {"reports": []}
    missing = iris.get("/reports/nothing-here.html")
    assert missing.status_code == 404
    assert "no report named 'nothing-here.html'" in missing.json()["detail"]
