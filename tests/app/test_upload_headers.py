"""Through the app, with and without a login: an uploaded header that names a data file outside its upload (the
/etc/passwd MetaImage, a NRRD header in a zip reaching up a folder) is refused with the field named, and the
refused file's bytes never come back (issue 25)."""

from __future__ import annotations

import zipfile

import pytest
from gradio_client import Client, handle_file

from tests.fixtures.app import page_client, running_app
from tests.pipeline.io.test_detached_data_files import SECRET, meta_header, nrrd_header

AUTH = ("alice", "s3cret-pass")
NO_MODEL = "(none: analysis of label maps only)"


@pytest.fixture(scope="module", params=["open", "login"])
def client(request, tmp_path_factory):
    from app.settings import AppSettings

    workdir = tmp_path_factory.mktemp(f"app-{request.param}")
    auth = AUTH if request.param == "login" else None
    with running_app(workdir, settings=AppSettings(workdir=workdir, auth=auth)) as (url, _):
        yield page_client(url, auth=auth)


def _run(client: Client, image=None, labels=None):
    return client.predict(
        handle_file(str(image)) if image else None,
        handle_file(str(labels)) if labels else None,
        "canonical",
        NO_MODEL,
        False,
        "Automatic",
        0.5,
        False,
        api_name="/run",
    )


def test_an_uploaded_metaimage_naming_etc_passwd_is_refused(client, tmp_path):
    header = meta_header(tmp_path / "knee.mha", SECRET)
    for image, labels in ((header, None), (None, header)):
        with pytest.raises(Exception, match=r"knee\.mha: its header field 'ElementDataFile' names a data file") as info:
            _run(client, image, labels)
        assert "root:" not in str(info.value) and "/tmp" not in str(info.value)


def test_a_zipped_nrrd_header_reaching_up_a_folder_is_refused(client, tmp_path):
    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("knee.nhdr", nrrd_header(tmp_path / "knee.nhdr", "../../../../../../etc/passwd").read_text())
    with pytest.raises(Exception, match=r"knee\.nhdr: its header field 'data file:'") as info:
        _run(client, archive, None)
    assert "root:" not in str(info.value)
