"""The book's offline MathJax: fetched from a checked tarball, copied safely, installed into _static."""
import hashlib
import io
import tarfile

import pytest

from advxai import book_assets
from advxai.fetch import FetchError


def _tarball(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:  # a link
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


GOOD = {"package/es5/tex-chtml.js": b"// mathjax", "package/es5/output/chtml/fonts/woff-v2/a.woff": b"font",
        "package/package.json": b"{}", "package/ts/other.ts": b"x"}


@pytest.fixture
def good(tmp_path, monkeypatch):
    tarball = _tarball(tmp_path / "mathjax-3.2.2.tgz", GOOD)
    monkeypatch.setattr(book_assets, "MATHJAX_SHA256", hashlib.sha256(tarball.read_bytes()).hexdigest())
    monkeypatch.delenv("ADVXAI_MATHJAX", raising=False)
    return tarball


def test_extract_takes_only_the_es5_folder(tmp_path, good):
    assert book_assets.extract_es5(good, tmp_path / "out") == 2
    assert (tmp_path / "out" / "tex-chtml.js").read_bytes() == b"// mathjax"
    assert not (tmp_path / "out" / "package.json").exists()


@pytest.mark.parametrize("members, match", [
    ({**GOOD, "package/es5/../../evil.js": b"x"}, "outside the es5 folder"),
    ({**GOOD, "package/es5/link.js": None}, "not a regular file"),
    ({"package/es5/other.js": b"x"}, "not the MathJax 3 package"),
])
def test_extract_refuses_what_is_not_mathjax(tmp_path, members, match):
    with pytest.raises(FetchError, match=match):
        book_assets.extract_es5(_tarball(tmp_path / "t.tgz", members), tmp_path / "out")
    assert not (tmp_path / "evil.js").exists()


def test_fetch_checks_the_sum_places_atomically_and_installs(tmp_cache, tmp_path, good, monkeypatch):
    folder = book_assets.fetch_mathjax(tarball=good)
    assert book_assets.mathjax_present(folder) and folder == book_assets.mathjax_folder()
    assert book_assets.fetch_mathjax() == folder  # present: nothing to do, no npm needed
    entry = book_assets.install_mathjax(tmp_path / "_static")
    assert entry == tmp_path / "_static" / "mathjax" / "tex-chtml.js" and entry.read_bytes() == b"// mathjax"
    monkeypatch.setattr(book_assets, "MATHJAX_SHA256", "0" * 64)
    with pytest.raises(FetchError, match="nothing was placed"):
        book_assets.fetch_mathjax(force=True, tarball=good)
    assert book_assets.mathjax_present(folder)  # the old folder is untouched


def test_missing_npm_names_the_command(tmp_cache, monkeypatch):
    monkeypatch.delenv("ADVXAI_MATHJAX", raising=False)
    monkeypatch.setattr(book_assets.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match="advxai fetch mathjax"):
        book_assets.fetch_mathjax()


def test_an_own_mathjax_folder_is_used_as_it_is(tmp_path, monkeypatch):
    own = tmp_path / "es5"
    monkeypatch.setenv("ADVXAI_MATHJAX", str(own))
    with pytest.raises(FetchError, match="holds no MathJax 3"):
        book_assets.fetch_mathjax()
    (own / "output" / "chtml" / "fonts").mkdir(parents=True)
    (own / "tex-chtml.js").write_text("// mathjax")
    assert book_assets.fetch_mathjax() == own
