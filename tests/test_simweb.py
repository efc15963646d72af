"""simweb itself: the LLM contract (through the real openai SDK), search, hosting, faults."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image

from faceatlas.devtools.simweb import OVERSIZED_BYTES, SimWeb, main
from tests.simweb_fixtures import faces_dir, person, simweb_server

PEOPLE = {
    "people": [
        person("Novak Đoković", ["people/person_01/img1.jpg", "fault:404", "fault:redirect-2"]),
        person("Fake Person", [], occupations=["Actor"], real=False),
        person("Ana Ivanović", ["people/person_02/img26.jpg"], occupations=["Athlete", "Actor"]),
        person("Luka Modrić", [], country="Croatia"),
        person("Twin One", [], country="Duplicates"),
    ]
}
FAMOUS = {"type": "json_schema",
          "json_schema": {"name": "famous_people", "strict": True, "schema": {"type": "object"}}}
VERIFIED = {"type": "json_schema",
            "json_schema": {"name": "verified_people", "strict": True, "schema": {"type": "object"}}}  # fmt: skip # noqa: E501


@pytest.fixture(scope="module")
def web() -> Iterator[SimWeb]:
    with simweb_server(PEOPLE) as web:
        yield web


def chat(web: SimWeb, text: str, response_format: dict[str, Any]) -> str:
    client = openai.OpenAI(base_url=web.url + "/v1", api_key="sk-test", max_retries=0,
                           http_client=httpx.Client(trust_env=False))  # fmt: skip
    completion = client.chat.completions.create(
        model="gpt-4.1",
        messages=[{"role": "system", "content": "You list public figures."},
                  {"role": "user", "content": text}],
        response_format=response_format,  # type: ignore[arg-type]
    )  # fmt: skip
    assert completion.object == "chat.completion"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    return completion.choices[0].message.content or ""


def test_pass1_lists_people_of_country_and_occupation_in_file_order(web: SimWeb) -> None:
    answer = json.loads(chat(web, "List people.\nCountry: Serbia\nOccupation: Actor", FAMOUS))
    assert answer == {"people": [{"name": "Fake Person", "occupation": "Actor"},
                                 {"name": "Ana Ivanović", "occupation": "Actor"}]}  # fmt: skip
    athletes = json.loads(chat(web, "Country: Serbia\nOccupation: Athlete", FAMOUS))
    assert [p["name"] for p in athletes["people"]] == ["Novak Đoković", "Ana Ivanović"]


def test_pass2_verifies_by_real_flag_unknown_is_false(web: SimWeb) -> None:
    text = 'Country: Serbia\nCandidates: ["Novak Djokovic", "Fake Person", "Nobody"]'
    answer = json.loads(chat(web, text, VERIFIED))["people"]
    assert [(p["name"], p["verified"]) for p in answer] == [
        ("Novak Djokovic", True), ("Fake Person", False), ("Nobody", False)]  # fmt: skip
    assert all(isinstance(p["reason"], str) and p["reason"] for p in answer)


def test_llm_fault_hooks(web: SimWeb) -> None:
    broken = chat(web, "Country: BrokenJSON\nOccupation: Athlete", FAMOUS)
    with pytest.raises(json.JSONDecodeError):
        json.loads(broken)
    twice = json.loads(chat(web, "Country: Duplicates\nOccupation: Athlete", FAMOUS))
    assert [p["name"] for p in twice["people"]] == ["Twin One", "Twin One"]


def test_llm_requires_bearer_token(web: SimWeb) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Country: Serbia"}],
            "response_format": FAMOUS}  # fmt: skip
    r = httpx.post(web.url + "/v1/chat/completions", json=body)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    for auth in ("Basic c2s6", "Bearer", "sk-raw-token"):
        r = httpx.post(web.url + "/v1/chat/completions", json=body, headers={"Authorization": auth})
        assert r.status_code == 401
    ok = httpx.post(web.url + "/v1/chat/completions", json=body,
                    headers={"Authorization": "Bearer x"})  # fmt: skip
    assert ok.status_code == 200


def test_search_answer_shape_and_keys(web: SimWeb) -> None:
    r = httpx.get(web.url + "/search", params={"query": "Novak Djokovic Athlete", "limit": "2"},
                  headers={"x-rapidapi-key": "k"})  # fmt: skip
    body = r.json()
    assert body["status"] == "OK" and body["request_id"]
    assert len(body["data"]) == 2
    fields = {"id", "title", "url", "width", "height", "thumbnail_url", "thumbnail_width",
              "thumbnail_height", "source", "source_url", "domain"}  # fmt: skip
    assert all(set(item) == fields for item in body["data"])
    assert body["data"][1]["url"].startswith(web.url + "/fault/404/")
    for key, status in (("", 401), ("bad-key", 401), ("forbidden", 403)):
        headers = {"x-rapidapi-key": key} if key else {}
        assert httpx.get(web.url + "/search?query=x", headers=headers).status_code == status


def test_thumbnail_is_a_smaller_jpeg_of_the_same_image(web: SimWeb) -> None:
    r = httpx.get(web.url + "/thumb/people/person_01/img1.jpg")
    assert r.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(r.content)) as im:
        assert im.format == "JPEG" and max(im.size) == 256
        assert abs(im.size[0] / im.size[1] - 1382 / 1868) < 0.01


def test_images_are_served_with_content_type(web: SimWeb) -> None:
    r = httpx.get(web.url + "/img/variants/32bit.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == (faces_dir() / "variants" / "32bit.png").read_bytes()


@pytest.mark.parametrize(
    "path",
    ["/img/../README.md", "/img/%2e%2e/README.md", "/img/people/%2E%2E/%2E%2E/README.md",
     "/img//etc/passwd", "/img/%2Fetc%2Fpasswd", "/img/people", "/img/nope.jpg",
     "/thumb/../README.md"],
)  # fmt: skip
def test_nothing_outside_photos_dir_is_served(web: SimWeb, path: str) -> None:
    with httpx.Client() as client:
        r = client.send(httpx.Request("GET", web.url + path))  # raw path, not normalised
    assert r.status_code == 404


def test_symlink_leaving_photos_dir_is_refused(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (photos / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (photos / "ok.jpg").write_bytes(b"fine")
    with simweb_server(photos_dir=photos) as web:
        assert httpx.get(web.url + "/img/link.jpg").status_code == 404
        assert httpx.get(web.url + "/img/ok.jpg").content == b"fine"


def test_fault_endpoints(web: SimWeb) -> None:
    img = "people/person_01/img1.jpg"
    size = (faces_dir() / img).stat().st_size
    assert httpx.get(f"{web.url}/fault/404/1").status_code == 404
    html = httpx.get(f"{web.url}/fault/html/1")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    with Image.open(io.BytesIO(httpx.get(f"{web.url}/fault/tiny/1").content)) as im:
        assert im.size == (8, 8)
    assert [httpx.get(f"{web.url}/fault/500-then-ok/t1/{img}").status_code for _ in "ab"] == [
        500, 200]  # fmt: skip
    redirect = httpx.get(f"{web.url}/fault/redirect/2/{img}")
    assert redirect.status_code == 302
    assert redirect.headers["location"] == f"{web.url}/fault/redirect/1/{img}"
    private = httpx.get(f"{web.url}/fault/redirect-private/1")
    assert private.headers["location"] == f"http://127.0.0.1:{web.closed_port}/x"
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{web.url}/fault/truncated/{img}")
    with httpx.stream("GET", f"{web.url}/fault/truncated/{img}") as r:
        assert int(r.headers["content-length"]) == size
    with httpx.stream("GET", f"{web.url}/fault/oversized/1") as r:
        assert int(r.headers["content-length"]) == OVERSIZED_BYTES
    with httpx.stream("GET", f"{web.url}/fault/oversized/1?nolength=1") as r:
        assert "content-length" not in r.headers


def test_search_hits_map_fault_entries_to_fault_urls(web: SimWeb) -> None:
    data = httpx.get(web.url + "/search", params={"query": "Novak Đoković Athlete"},
                     headers={"x-rapidapi-key": "k"}).json()["data"]  # fmt: skip
    assert [d["url"].removeprefix(web.url).split("/")[1:3] for d in data] == [
        ["img", "people"], ["fault", "404"], ["fault", "redirect"]]  # fmt: skip
    # Fault entries still carry a working thumbnail of the person's first plain image.
    assert data[1]["thumbnail_url"] == f"{web.url}/thumb/people/person_01/img1.jpg"


def test_request_log_records_method_and_path(web: SimWeb) -> None:
    web.reset_stats()
    httpx.get(web.url + "/fault/404/logged?x=1")
    assert web.requests == [("GET", "/fault/404/logged?x=1")]


def test_handles_80_concurrent_slow_requests(web: SimWeb) -> None:
    web.reset_stats()
    statuses: list[int] = []
    start = threading.Barrier(80)
    client = httpx.Client(limits=httpx.Limits(max_connections=100), timeout=10)

    def get(i: int) -> None:
        start.wait()
        # 80 × 1 s would take 80 s one at a time; the 10 s timeout fails a serial server.
        r = client.get(f"{web.url}/fault/slow/1000/people/person_01/img2.jpg?i={i}")
        statuses.append(r.status_code)

    threads = [threading.Thread(target=get, args=(i,)) for i in range(80)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()
    assert statuses == [200] * 80
    assert web.max_inflight >= 60  # really handled side by side


def test_people_input_is_validated() -> None:
    with pytest.raises(ValueError, match="people"):
        SimWeb(people={"persons": []})
    with pytest.raises(ValueError, match="no name"):
        SimWeb(people=[{"country": "Serbia"}])


def test_command_line_serves_and_rejects_bad_arguments(tmp_path: Path) -> None:
    people_file = tmp_path / "people.json"
    people_file.write_text(json.dumps(PEOPLE), encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["--people", str(tmp_path / "missing.json"), "--photos", str(faces_dir())])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "faceatlas.devtools.simweb", "--people", str(people_file),
         "--photos", str(faces_dir()), "--port", "0"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split(" at ")[1].split()[0]
        assert httpx.get(url + "/healthz").json() == {"ok": True, "people": 5}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
