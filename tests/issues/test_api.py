"""/api/issues/ and /api/issues/<id>/comments/: CRUD, filters, ordering, and what writes publish."""

import pytest

from issues.models import Comment, Issue

from .helpers import assert_issue_update, published

pytestmark = pytest.mark.django_db

ISSUE_KEYS = {
    "id", "title", "culprit", "level", "status", "assignee", "fingerprint",
    "event_count", "first_seen", "last_seen", "created_at", "updated_at",
}  # fmt: skip


def test_anonymous_gets_401(api):
    issue = Issue.objects.create(title="x")
    assert api.get("/api/issues/").status_code == 401
    assert api.post("/api/issues/", {"title": "x"}, format="json").status_code == 401
    assert api.get(f"/api/issues/{issue.pk}/comments/").status_code == 401


def test_create_issue_gives_201_and_publishes_created(auth_api, alice):
    response = auth_api(alice).post("/api/issues/", {"title": "TypeError in checkout", "level": "error"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == ISSUE_KEYS and isinstance(body["id"], str) and body["status"] == "unresolved"
    assert body["fingerprint"] and body["assignee"] is None and body["created_at"].endswith("Z")
    assert_issue_update(published("issues")[-1], "issues", body["id"], "created")


def test_duplicate_fingerprint_is_400(auth_api, alice):
    api = auth_api(alice)
    assert api.post("/api/issues/", {"title": "same"}, format="json").status_code == 201
    response = api.post("/api/issues/", {"title": "same"}, format="json")
    assert response.status_code == 400 and "fingerprint" in response.json()


def test_patch_status_publishes_resolved_by_request_user(auth_api, alice):
    issue = Issue.objects.create(title="x")
    response = auth_api(alice).patch(f"/api/issues/{issue.pk}/", {"status": "resolved"}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "resolved"
    data = assert_issue_update(published(f"issue:{issue.pk}")[-1], f"issue:{issue.pk}", issue.pk, "resolved")
    assert data["resolved_by"] == str(alice.pk)


def test_patch_assignee_notifies_assignee_by_request_user(auth_api, alice, bob):
    issue = Issue.objects.create(title="x")
    response = auth_api(alice).patch(f"/api/issues/{issue.pk}/", {"assignee": str(bob.pk)}, format="json")
    assert response.status_code == 200 and response.json()["assignee"] == str(bob.pk)
    assert published("issues")[-1]["update_type"] == "assigned"
    [note] = published(f"user:{bob.pk}")
    assert note["kind"] == "assigned" and note["data"]["by"] == str(alice.pk)


def test_patch_unknown_assignee_or_status_is_400(auth_api, alice):
    issue = Issue.objects.create(title="x")
    api = auth_api(alice)
    assert api.patch(f"/api/issues/{issue.pk}/", {"assignee": "9999"}, format="json").status_code == 400
    assert api.patch(f"/api/issues/{issue.pk}/", {"status": "gone"}, format="json").status_code == 400
    assert api.get("/api/issues/9999/").status_code == 404


def test_patch_without_change_publishes_nothing(auth_api, alice):
    issue = Issue.objects.create(title="x")
    count = len(published())
    assert auth_api(alice).patch(f"/api/issues/{issue.pk}/", {"title": "x"}, format="json").status_code == 200
    assert len(published()) == count


def test_delete_publishes_deleted(auth_api, alice):
    issue = Issue.objects.create(title="x")
    assert auth_api(alice).delete(f"/api/issues/{issue.pk}/").status_code == 204
    assert published(f"issue:{issue.pk}")[-1]["update_type"] == "deleted"


def test_list_filters_orders_and_paginates(auth_api, alice, bob):
    Issue.objects.create(title="a", level="error", status="resolved", assignee=alice, fingerprint="a")
    Issue.objects.create(title="b", level="fatal", assignee=bob, fingerprint="b", event_count=5)
    Issue.objects.create(title="c", level="error", fingerprint="c", event_count=9)
    api = auth_api(alice)

    def titles(query: str) -> list[str]:
        response = api.get("/api/issues/" + query)
        assert response.status_code == 200, response.json()
        return [row["title"] for row in response.json()["results"]]

    assert titles("?status=unresolved&ordering=title") == ["b", "c"]
    assert titles("?level=error&ordering=-title") == ["c", "a"]
    assert titles("?assignee=me") == ["a"]
    assert titles(f"?assignee={bob.pk}") == ["b"]
    assert titles("?assignee=none") == ["c"]
    assert titles("?ordering=-event_count,title") == ["c", "b", "a"]
    page = api.get("/api/issues/?ordering=title&limit=2&offset=1").json()
    assert page["count"] == 3 and [r["title"] for r in page["results"]] == ["b", "c"]
    assert api.get("/api/issues/?ordering=password").status_code == 400
    assert api.get("/api/issues/?level=loud").status_code == 400
    assert api.get("/api/issues/?assignee=someone").status_code == 400


def test_comments_list_and_create_as_caller(auth_api, alice):
    issue = Issue.objects.create(title="x")
    Comment.objects.create(issue=issue, body="older")
    api = auth_api(alice)
    response = api.post(f"/api/issues/{issue.pk}/comments/", {"body": "Looking into it"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "issue", "author", "body", "created_at"}
    assert body["author"] == str(alice.pk) and body["issue"] == str(issue.pk)
    data = assert_issue_update(published("issues")[-1], "issues", issue.pk, "commented")
    assert data["comment"]["id"] == body["id"]
    listed = api.get(f"/api/issues/{issue.pk}/comments/").json()
    assert listed["count"] == 2 and [c["body"] for c in listed["results"]] == ["older", "Looking into it"]
    assert api.get("/api/issues/9999/comments/").status_code == 404
    assert api.post(f"/api/issues/{issue.pk}/comments/", {}, format="json").status_code == 400
