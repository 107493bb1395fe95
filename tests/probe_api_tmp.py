from test_api import *  # noqa


def test_probe(served, client, raw, gallery):
    sid = gallery.sightings[0]
    r = raw.post(f"/v1/sightings/{sid}/similar")
    print("similar no body", r.status_code, len(r.json().get("hits", [])))
    print("ingest no files", raw.post("/v1/ingest", data={"camera": "x"}).status_code, raw.post("/v1/ingest", data={"camera": "x"}).json())
    for f in ["[]", "null", '{"time_from":"2024-01-02T00:00:00","time_to":"2024-01-01T00:00:00"}', '{"cameras":"abc"}', '{"bogus": 1}']:
        r = raw.post("/v1/search", data={"text": "x", "filters": f})
        print("filters", f, r.status_code, r.text[:300])
    r = raw.post("/v1/search", data={"text": "x", "threshold": "2"}); print("thr", r.status_code, r.text[:200])
    r = raw.post("/v1/review/confirm", json={"sighting_id": sid, "identity_id": 99999}); print("confirm unknown", r.status_code, r.text)
    r = raw.post("/v1/review/confirm", json={"sighting_id": 99999, "identity_id": 1}); print("confirm unknown s", r.status_code, r.text)
    r = raw.post("/v1/identities/merge", json={"target_id": 1, "source_ids": []}); print("merge empty", r.status_code, r.text[:200])
    r = raw.get("/v1/objects/..%2F..%2Fetc%2Fpasswd", params={"expires": 1, "signature": "x"}); print("traversal", r.status_code, r.text)
    r = raw.get("/v1/objects/crops/a.jpg"); print("no sig", r.status_code, r.text[:200])
    r = raw.post("/v1/search", data={"text": "x", "group_by_identity": "maybe"}); print("gbi", r.status_code, r.text[:200])
    r = raw.post("/v1/search", data={"text": "x" * 100000}); print("long text", r.status_code, r.text[:200])
    r = raw.post("/v1/search", data={"text": "x"}, files={"ir": ("a.png", jpeg(person_image(1)))}); print("text+ir", r.status_code, r.json().get("query_parts"))
    r = raw.post("/v1/ingest/folder", json={"path": "/etc"}); print("folder", r.status_code, r.text)
    r = raw.post("/v1/search", data={"text": "x", "for_identity": "12345"}); print("for unknown", r.status_code, r.text[:100])
    try:
        client.search(text="x", filters={"review": "maybe"})
    except Exception as e:
        print("sdk bad filters", type(e).__name__, str(e)[:200])
    r = raw.post("/v1/search", data={"text": "x", "filters": '{"review":"rejected"}'}); print("review rejected", r.status_code, r.text[:300])
