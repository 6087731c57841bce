"""The sandbox's web API against the contract: functions, status codes and bodies, over real HTTP."""

from __future__ import annotations

from typing import Any, Dict

import pytest
import requests

from anonapi.responses import EXTENDED_FIELDS, SHORT_FIELDS, JobStatus

PROJECT = "Wetenschap-Algemeen"


class Caller:
    """Sends API calls as the client does: token header, user_name field, form body."""

    def __init__(self, sandbox, token: str = "", user_name: str = ""):
        self.url = sandbox.url
        self.token = token or sandbox.token
        self.user_name = user_name or sandbox.user_name
        self.session = requests.Session()

    def call(self, method: str, function: str, **fields: Any) -> requests.Response:
        fields.setdefault("user_name", self.user_name)
        return self.session.request(
            method,
            f"{self.url}/{function}",
            data=fields,
            headers={"Authorization": f"Token {self.token}"},
            timeout=30,
        )

    def get(self, function: str, **fields: Any) -> requests.Response:
        return self.call("GET", function, **fields)

    def post(self, function: str, **fields: Any) -> requests.Response:
        return self.call("POST", function, **fields)


def path_job_fields(**overrides: Any) -> Dict[str, Any]:
    fields = {
        "source_type": "PATH",
        "source_path": r"\\server\share\study",
        "destination_type": "PATH",
        "destination_path": r"\\server\output",
        "project_name": PROJECT,
        "anonymizedpatientname": "PSEUDO^ONE",
        "anonymizedpatientid": "P001",
        "description": "test job",
    }
    fields.update(overrides)
    return fields


@pytest.fixture(scope="module")
def shared_sandbox(tmp_path_factory):
    """One sandbox for the tests of this module that do not depend on which other jobs exist."""
    from anonapi.sandbox import Sandbox

    with Sandbox(data_dir=tmp_path_factory.mktemp("sandbox-data")) as running_sandbox:
        # Jobs stay ACTIVE, so their fields do not change while a test reads them.
        running_sandbox.faults.hold_jobs(JobStatus.ACTIVE)
        yield running_sandbox


@pytest.fixture
def caller(shared_sandbox) -> Caller:
    return Caller(shared_sandbox)


@pytest.fixture
def fresh_caller(sandbox) -> Caller:
    """A caller of a sandbox of its own, for tests that count jobs."""
    sandbox.faults.hold_jobs(JobStatus.ACTIVE)
    return Caller(sandbox)


@pytest.fixture
def job_id(caller: Caller) -> int:
    response = caller.post("create_job", **path_job_fields())
    assert response.status_code == 200
    return response.json()["job_id"]


# Base URL and unknown functions


def test_base_url_returns_404_with_documentation(caller):
    response = caller.get("")
    assert response.status_code == 404
    assert "get_jobs_list" in response.json()["documentation"]
    assert "404" in response.json()


def test_base_url_without_slash_returns_documentation(shared_sandbox):
    response = requests.get(shared_sandbox.url, timeout=30)
    assert response.status_code == 404
    assert "documentation" in response.json()


def test_unknown_function_returns_404_with_documentation(caller):
    response = caller.get("no_such_function")
    assert response.status_code == 404
    assert "no_such_function" in response.json()["404"]
    assert "documentation" in response.json()


def test_path_outside_base_path_is_not_json(shared_sandbox):
    root_url = shared_sandbox.url.rsplit("/sandbox", 1)[0]
    response = requests.get(f"{root_url}/other/get_jobs", timeout=30)
    assert response.status_code == 404
    with pytest.raises(ValueError):
        response.json()


# Methods and authentication


@pytest.mark.parametrize("function", ["get_jobs", "get_job", "get_jobs_list", "get_jobs_list_extended"])
def test_get_function_rejects_post(caller, function):
    assert caller.post(function).status_code == 405


@pytest.mark.parametrize("function", ["create_job", "cancel_job", "modify_job", "get_token"])
def test_post_function_rejects_get(caller, function):
    assert caller.get(function).status_code == 405


def test_wrong_token_returns_401(shared_sandbox):
    response = Caller(shared_sandbox, token="wrong").get("get_jobs")
    assert response.status_code == 401


def test_missing_token_returns_401(shared_sandbox):
    response = requests.get(f"{shared_sandbox.url}/get_jobs", data={"user_name": "demo"}, timeout=30)
    assert response.status_code == 401


def test_token_of_other_user_returns_401(shared_sandbox):
    response = Caller(shared_sandbox, user_name="someone_else").get("get_jobs")
    assert response.status_code == 401


def test_401_body_does_not_contain_token(shared_sandbox):
    response = Caller(shared_sandbox, token="secret-token-value").get("get_jobs")
    assert "secret-token-value" not in response.text


# get_token


def test_get_token_returns_working_token(shared_sandbox):
    response = requests.post(
        f"{shared_sandbox.url}/get_token", data={"user_name": "demo", "password": "demo"}, timeout=30
    )
    assert response.status_code == 200
    new_token = response.json()["token"]
    assert Caller(shared_sandbox, token=new_token).get("get_jobs").status_code == 200


def test_get_token_keeps_earlier_tokens_valid(shared_sandbox):
    requests.post(f"{shared_sandbox.url}/get_token", data={"user_name": "demo", "password": "demo"}, timeout=30)
    assert Caller(shared_sandbox).get("get_jobs").status_code == 200


def test_get_token_wrong_password_returns_401(shared_sandbox):
    response = requests.post(
        f"{shared_sandbox.url}/get_token", data={"user_name": "demo", "password": "wrong"}, timeout=30
    )
    assert response.status_code == 401


def test_get_token_unknown_user_returns_401(shared_sandbox):
    response = requests.post(
        f"{shared_sandbox.url}/get_token", data={"user_name": "nobody", "password": "demo"}, timeout=30
    )
    assert response.status_code == 401


def test_get_token_missing_password_returns_400(shared_sandbox):
    response = requests.post(f"{shared_sandbox.url}/get_token", data={"user_name": "demo"}, timeout=30)
    assert response.status_code == 400
    assert response.json() == {"errors": {"password": "Required parameter password not supplied"}}


# create_job


def test_create_job_returns_extended_info(caller):
    response = caller.post("create_job", **path_job_fields())
    assert response.status_code == 200
    info = response.json()
    assert set(info) == set(SHORT_FIELDS + EXTENDED_FIELDS)


def test_create_job_stores_arguments(caller):
    info = caller.post("create_job", **path_job_fields()).json()
    assert info["status"] == JobStatus.ACTIVE
    assert info["source_path"] == r"\\server\share\study"
    assert info["source_anonymizedpatientname"] == "PSEUDO^ONE"
    assert info["source_anonymizedpatientid"] == "P001"
    assert info["destination_path"] == r"\\server\output"
    assert info["project_name"] == PROJECT
    assert info["user_name"] == "demo"
    assert info["description"] == "test job"


def test_create_job_date_format(caller):
    info = caller.post("create_job", **path_job_fields()).json()
    assert len(info["date"]) == len("2019-11-26T16:34:07")
    assert info["date"][10] == "T"


def test_create_wado_job(caller):
    info = caller.post(
        "create_job",
        source_type="WADO",
        source_name="IDC_WADO",
        source_instance_id="accession_number:1234567.12345678",
        destination_type="PATH",
        destination_path=r"\\server\output",
        project_name=PROJECT,
        anonymizedpatientname="PSEUDO^TWO",
        anonymizedpatientid="P002",
    ).json()
    assert info["source_type"] == "WADO"
    assert info["source_instance_id"] == "accession_number:1234567.12345678"
    assert info["source_name"] == "IDC_WADO"


def test_create_job_with_pims_needs_no_pseudonyms(caller):
    fields = path_job_fields(pims_keyfile_id="42")
    del fields["anonymizedpatientname"], fields["anonymizedpatientid"]
    response = caller.post("create_job", **fields)
    assert response.status_code == 200
    assert response.json()["source_pims_keyfile_id"] == "42"


def test_create_job_missing_pseudonym_returns_400(caller):
    fields = path_job_fields()
    del fields["anonymizedpatientid"]
    response = caller.post("create_job", **fields)
    assert response.status_code == 400
    assert "anonymizedpatientid" in response.json()["errors"]


@pytest.mark.parametrize("field", ["source_type", "source_path", "destination_path", "project_name"])
def test_create_job_missing_field_returns_400(caller, field):
    fields = path_job_fields()
    del fields[field]
    response = caller.post("create_job", **fields)
    assert response.status_code == 400
    assert response.json()["errors"][field] == f"Required parameter {field} not supplied"


def test_create_job_invalid_source_type_returns_400(caller):
    response = caller.post("create_job", **path_job_fields(source_type="FTP"))
    assert response.status_code == 400
    assert "source_type" in response.json()["errors"]


def test_create_job_invalid_destination_type_returns_400(caller):
    response = caller.post("create_job", **path_job_fields(destination_type="WADO"))
    assert response.status_code == 400
    assert "destination_type" in response.json()["errors"]


def test_create_job_unknown_pacs_returns_400(caller):
    response = caller.post(
        "create_job", **path_job_fields(source_type="WADO", source_name="OTHER", source_instance_id="1.2.3")
    )
    assert response.status_code == 400
    assert "source_name" in response.json()["errors"]


def test_create_job_wado_without_instance_id_returns_400(caller):
    response = caller.post("create_job", **path_job_fields(source_type="WADO", source_name="IDC_WADO"))
    assert response.status_code == 400
    assert "source_instance_id" in response.json()["errors"]


def test_create_job_unconnected_project_returns_anonymize_input_exception(caller):
    response = caller.post("create_job", **path_job_fields(project_name="someproject"))
    assert response.status_code == 400
    assert response.json() == {
        "errors": {
            "AnonymizeInputException":
                "given user_name `demo` is not connected to given project_name someproject"
        }
    }


def test_create_job_for_new_user_in_own_project(shared_sandbox, caller):
    token = shared_sandbox.add_user("researcher", "secret", projects=["Other-Project"])
    other = Caller(shared_sandbox, token=token, user_name="researcher")
    response = other.post("create_job", **path_job_fields(project_name="Other-Project"))
    assert response.status_code == 200
    assert response.json()["user_name"] == "researcher"


def test_create_job_priority(caller):
    info = caller.post("create_job", **path_job_fields(priority="30")).json()
    assert info["priority"] == 30


# get_job, get_jobs


def test_get_job_returns_extended_info(caller, job_id):
    response = caller.get("get_job", job_id=job_id)
    assert response.status_code == 200
    assert response.json()["job_id"] == job_id
    assert set(response.json()) == set(SHORT_FIELDS + EXTENDED_FIELDS)


def test_get_job_unknown_id_returns_recorded_body(caller):
    response = caller.get("get_job", job_id=447783)
    assert response.status_code == 400
    assert response.json() == {"errors": {"job_id": "Job with id 447783 does not exist"}}


def test_get_job_huge_id_does_not_exist(caller):
    response = caller.get("get_job", job_id=10**30)
    assert response.status_code == 400
    assert response.json() == {"errors": {"job_id": f"Job with id {10**30} does not exist"}}


def test_get_job_missing_id_returns_recorded_body(caller):
    response = caller.get("get_job")
    assert response.status_code == 400
    assert response.json() == {"errors": {"job_id": "Required parameter job_id not supplied"}}


def test_get_job_invalid_id_returns_400(caller):
    response = caller.get("get_job", job_id="abc")
    assert response.status_code == 400
    assert "job_id" in response.json()["errors"]


def test_get_job_reads_query_string_too(shared_sandbox, caller, job_id):
    response = requests.get(
        f"{shared_sandbox.url}/get_job?job_id={job_id}&user_name=demo",
        headers={"Authorization": f"Token {shared_sandbox.token}"},
        timeout=30,
    )
    assert response.json()["job_id"] == job_id


def test_get_jobs_returns_short_info_by_id(caller, job_id):
    response = caller.get("get_jobs")
    assert response.status_code == 200
    assert set(response.json()[str(job_id)]) == set(SHORT_FIELDS)


def test_get_jobs_returns_latest_50(fresh_caller):
    for _ in range(55):
        fresh_caller.post("create_job", **path_job_fields())
    jobs = fresh_caller.get("get_jobs").json()
    assert len(jobs) == 50
    assert "55" in jobs
    assert "5" not in jobs


# get_jobs_list, get_jobs_list_extended


def test_get_jobs_list_repeated_ids(caller, job_id):
    second = caller.post("create_job", **path_job_fields()).json()["job_id"]
    response = caller.get("get_jobs_list", job_ids=[job_id, second])
    assert sorted(response.json()) == sorted([str(job_id), str(second)])


def test_get_jobs_list_comma_separated_ids(caller, job_id):
    second = caller.post("create_job", **path_job_fields()).json()["job_id"]
    response = caller.get("get_jobs_list", job_ids=f"{job_id},{second}")
    assert sorted(response.json()) == sorted([str(job_id), str(second)])


def test_get_jobs_list_leaves_out_unknown_ids(caller, job_id):
    response = caller.get("get_jobs_list", job_ids=[job_id, 99999])
    assert response.status_code == 200
    assert list(response.json()) == [str(job_id)]


def test_get_jobs_list_leaves_out_huge_ids(caller, job_id):
    response = caller.get("get_jobs_list", job_ids=[job_id, 10**30])
    assert response.status_code == 200
    assert list(response.json()) == [str(job_id)]


def test_get_jobs_list_short_fields(caller, job_id):
    info = caller.get("get_jobs_list", job_ids=[job_id]).json()[str(job_id)]
    assert set(info) == set(SHORT_FIELDS)


def test_get_jobs_list_extended_fields(caller, job_id):
    info = caller.get("get_jobs_list_extended", job_ids=[job_id]).json()[str(job_id)]
    assert set(info) == set(SHORT_FIELDS + EXTENDED_FIELDS)


def test_get_jobs_list_missing_ids_returns_400(caller):
    response = caller.get("get_jobs_list")
    assert response.status_code == 400
    assert response.json() == {"errors": {"job_ids": "Required parameter job_ids not supplied"}}


def test_get_jobs_list_invalid_id_returns_400(caller):
    response = caller.get("get_jobs_list", job_ids=["1", "x"])
    assert response.status_code == 400
    assert "job_ids" in response.json()["errors"]


def test_get_jobs_list_extended_10000_ids(fresh_caller):
    for _ in range(3):
        fresh_caller.post("create_job", **path_job_fields())
    job_ids = list(range(1, 10_001))
    response = fresh_caller.get("get_jobs_list_extended", job_ids=job_ids)
    assert response.status_code == 200
    assert sorted(response.json()) == ["1", "2", "3"]


def test_get_jobs_list_10000_existing_jobs(sandbox, fresh_caller):
    fields = {
        "source_type": "PATH",
        "source_path": r"\\server\share\study",
        "destination_path": r"\\server\output",
        "destination_type": "PATH",
        "project_name": PROJECT,
    }
    for _ in range(10_000):
        sandbox.store.create_job("demo", fields)
    response = fresh_caller.get("get_jobs_list", job_ids=list(range(1, 10_001)))
    assert len(response.json()) == 10_000


# cancel_job


def test_cancel_job_sets_inactive(caller, job_id):
    response = caller.post("cancel_job", job_id=job_id)
    assert response.status_code == 200
    assert response.json()["status"] == JobStatus.INACTIVE


def test_cancel_job_unknown_id_returns_400(caller):
    response = caller.post("cancel_job", job_id=123456)
    assert response.status_code == 400
    assert response.json() == {"errors": {"job_id": "Job with id 123456 does not exist"}}


def test_cancel_job_missing_id_returns_400(caller):
    response = caller.post("cancel_job")
    assert response.json() == {"errors": {"job_id": "Required parameter job_id not supplied"}}


# modify_job


def test_modify_job_reset_fields(caller, job_id):
    caller.post("cancel_job", job_id=job_id)
    response = caller.post(
        "modify_job", job_id=job_id, status="ACTIVE", files_downloaded=0, files_processed=0, error=" "
    )
    assert response.status_code == 200
    info = response.json()
    assert info["status"] == JobStatus.ACTIVE
    assert info["error"] == " "
    assert info["files_downloaded"] == 0


def test_modify_job_empty_error_returns_400(caller, job_id):
    response = caller.post("modify_job", job_id=job_id, error="")
    assert response.status_code == 400
    assert response.json() == {"errors": {"error": "This field may not be blank."}}


def test_modify_job_opt_out_ignore(shared_sandbox, caller, job_id):
    response = caller.post(
        "modify_job", job_id=job_id, source_ignore_opt_out="True",
        source_ignore_opt_out_reason="Reason: consent form signed",
    )
    assert response.status_code == 200
    assert shared_sandbox.get_job(job_id)["source_ignore_opt_out"] == 1


def test_modify_job_description(caller, job_id):
    response = caller.post("modify_job", job_id=job_id, description="new text")
    assert response.json()["description"] == "new text"


def test_modify_job_invalid_status_returns_400(caller, job_id):
    response = caller.post("modify_job", job_id=job_id, status="PAUSED")
    assert response.status_code == 400
    assert "status" in response.json()["errors"]


def test_modify_job_unknown_field_returns_400(caller, job_id):
    response = caller.post("modify_job", job_id=job_id, favourite_colour="blue")
    assert response.status_code == 400
    assert "favourite_colour" in response.json()["errors"]


def test_modify_job_read_only_field_returns_400(caller, job_id):
    response = caller.post("modify_job", job_id=job_id, user_name="demo", date="2020-01-01T00:00:00")
    assert response.status_code == 400
    assert "date" in response.json()["errors"]


def test_modify_job_invalid_number_returns_400(caller, job_id):
    response = caller.post("modify_job", job_id=job_id, files_processed="many")
    assert response.status_code == 400
    assert "files_processed" in response.json()["errors"]


def test_modify_job_too_large_number_returns_400(caller, job_id):
    response = caller.post("modify_job", job_id=job_id, files_downloaded=str(2**70))
    assert response.status_code == 400
    assert "out of range" in response.json()["errors"]["files_downloaded"]


def test_modify_job_invalid_bool_returns_400(caller, job_id):
    response = caller.post("modify_job", job_id=job_id, source_ignore_opt_out="perhaps")
    assert response.status_code == 400
    assert "source_ignore_opt_out" in response.json()["errors"]


def test_modify_job_without_changes_returns_400(caller, job_id):
    response = caller.post("modify_job", job_id=job_id)
    assert response.status_code == 400


def test_modify_job_unknown_id_returns_400(caller):
    response = caller.post("modify_job", job_id=98765, description="x")
    assert response.json() == {"errors": {"job_id": "Job with id 98765 does not exist"}}


# Multipart bodies, which some clients send


def test_multipart_body_is_read(shared_sandbox, caller, job_id):
    response = requests.get(
        f"{shared_sandbox.url}/get_job",
        files={"job_id": (None, str(job_id)), "user_name": (None, "demo")},
        headers={"Authorization": f"Token {shared_sandbox.token}"},
        timeout=30,
    )
    assert response.json()["job_id"] == job_id
