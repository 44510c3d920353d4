"""Grouping of the repeated ``--dataset*`` options, ``none``, names and the options file."""

from __future__ import annotations

from pathlib import Path

import pytest

from datakeep.errors import InvalidInput
from datakeep.experiments.options import (
    DatasetSpec,
    VolumeKind,
    archive_extension,
    dataset_options_from_yaml,
    derive_name,
    group_dataset_options,
    load_options_file,
)

KEY_A, SECRET_A = "ABCDEFGHIJ0123456789", "aaaabbbbccccddddeeee11112222333344445555"
KEY_C, SECRET_C = "KLMNOPQRST0123456789", "eeeeddddccccbbbbaaaa11112222333344445555"


def seed_options() -> dict[str, list[str]]:
    """The seed's three datasets, as the repeated options of its example command."""
    return {
        "datasetUri": [
            "s3://bucket-name/my-dataset.zip",
            "s3://bucket-name/dataset-dir",
            "s3://another-bucket/another-dataset.zip",
        ],
        "datasetName": ["dataset A", "dataset B", "dataset C"],
        "datasetAwsAccessKeyId": [KEY_A, KEY_A, KEY_C],
        "datasetAwsSecretAccessKey": [SECRET_A, SECRET_A, SECRET_C],
        "datasetVersionId": ["bjh023v9dloWEq23VC912zxprrl8.23C", "none", "9Jqci387dcb8dekdm39ckbhs8nAS8cVV"],
        "datasetEtag": ["3823e4ab23cc48ad83e9e3fa99ecc12a", "none", "none"],
    }


def test_seed_three_datasets_group_by_position() -> None:
    a, b, c = group_dataset_options(seed_options())
    assert (a.name, a.uri, a.version_id, a.etag) == (
        "dataset A",
        "s3://bucket-name/my-dataset.zip",
        "bjh023v9dloWEq23VC912zxprrl8.23C",
        "3823e4ab23cc48ad83e9e3fa99ecc12a",
    )
    assert (b.name, b.version_id, b.etag) == ("dataset B", None, None)
    assert (c.aws_access_key_id, c.aws_secret_access_key, c.version_id, c.etag) == (
        KEY_C,
        SECRET_C,
        "9Jqci387dcb8dekdm39ckbhs8nAS8cVV",
        None,
    )
    assert all(s.volume_kind is VolumeKind.SHARED for s in (a, b, c))


def test_none_means_no_value_in_any_case() -> None:
    (spec,) = group_dataset_options(
        {
            "datasetUri": ["s3://b/x.tgz"],
            "datasetName": ["NONE"],
            "datasetEtag": ["None"],
            "datasetVolumeKind": ["none"],
        }
    )
    assert spec.name == "x"
    assert spec.etag is None
    assert spec.volume_kind is VolumeKind.SHARED


def test_too_many_parameter_sets_is_gradients_error() -> None:
    with pytest.raises(InvalidInput) as info:
        group_dataset_options({"datasetUri": ["s3://b/one.zip"], "datasetName": ["a", "b"]})
    assert str(info.value).startswith(
        "Too many dataset parameter sets (2) for 1 dataset URIs. Forgot to add one more dataset URI? "
    )


def test_options_without_uri_or_id() -> None:
    with pytest.raises(InvalidInput, match="Too many dataset parameter sets \\(1\\) for 0"):
        group_dataset_options({"datasetName": ["a"]})
    with pytest.raises(InvalidInput, match="id or uri key is required"):
        group_dataset_options({"datasetUri": ["none"], "datasetName": ["a"]})


def test_fewer_options_than_uris_fill_with_none() -> None:
    first, second = group_dataset_options(
        {"datasetUri": ["s3://b/a.zip", "s3://b/c/"], "datasetEtag": ["abc"]}
    )
    assert first.etag == "abc"
    assert second.etag is None


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("s3://my-bucket/mnist.zip", "mnist"),
        ("s3://my-bucket", "my-bucket"),
        ("s3://my-bucket/", "my-bucket"),
        ("s3://b/deep/path/images.tar.gz", "images"),
        ("s3://b/deep/path/images.TGZ", "images"),
        ("s3://b/a/dataset-dir/", "dataset-dir"),
        ("s3://b/a/dataset-dir", "dataset-dir"),
        ("s3://b/table.csv", "table.csv"),
        ("s3://b/x.tar.gz2", "x"),
    ],
)
def test_name_is_basename_without_archive_extension(uri: str, name: str) -> None:
    assert derive_name(uri) == name


def test_name_override_and_duplicates() -> None:
    (spec,) = group_dataset_options({"datasetUri": ["s3://b/mnist.zip"], "datasetName": ["digits"]})
    assert spec.name == "digits"
    with pytest.raises(InvalidInput, match="Datasets 1 and 2 are both named 'mnist'"):
        group_dataset_options({"datasetUri": ["s3://a/mnist.zip", "s3://b/mnist.tar"]})


@pytest.mark.parametrize("name", ["a/b", "..", " lead"])
def test_names_must_be_one_path_component(name: str) -> None:
    with pytest.raises(InvalidInput, match="Invalid dataset name"):
        group_dataset_options({"datasetUri": ["s3://b/k"], "datasetName": [name]})


def test_folder_uri_ignores_version_and_etag_with_warning() -> None:
    (spec,) = group_dataset_options(
        {"datasetUri": ["s3://b/dir/"], "datasetVersionId": ["v1"], "datasetEtag": ["e1"]}
    )
    assert (spec.version_id, spec.etag) == (None, None)
    assert any("folder" in w and "'v1'" in w for w in spec.warnings)
    assert any("'e1'" in w for w in spec.warnings)


def test_volume_kind_and_size() -> None:
    dyn, shared = group_dataset_options(
        {
            "datasetUri": ["s3://b/a.zip", "s3://b/c.zip"],
            "datasetVolumeKind": ["Dynamic", "shared"],
            "datasetVolumeSize": ["10Gi", "1G"],
        }
    )
    assert dyn.volume_kind is VolumeKind.DYNAMIC
    assert dyn.dynamic_size == 10 * 2**30
    assert shared.volume_kind is VolumeKind.SHARED
    assert any("only applies to dynamic" in w for w in shared.warnings)
    (default,) = group_dataset_options({"datasetUri": ["s3://b/a.zip"], "datasetVolumeKind": ["dynamic"]})
    assert default.dynamic_size == 5 * 2**30
    with pytest.raises(InvalidInput, match="Invalid volume kind"):
        group_dataset_options({"datasetUri": ["s3://b/a.zip"], "datasetVolumeKind": ["nfs"]})


def test_half_a_key_pair_is_refused_and_keys_are_redacted() -> None:
    with pytest.raises(InvalidInput, match="only one of the AWS"):
        group_dataset_options({"datasetUri": ["s3://b/a"], "datasetAwsAccessKeyId": [KEY_A]})
    (spec,) = group_dataset_options(
        {
            "datasetUri": ["s3://b/a"],
            "datasetAwsAccessKeyId": [KEY_A],
            "datasetAwsSecretAccessKey": [SECRET_A],
        }
    )
    assert SECRET_A not in repr(spec)
    assert KEY_A not in repr(spec)
    record = spec.redacted()
    assert SECRET_A not in str(record)
    assert KEY_A not in str(record)


def test_non_s3_uri_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not an S3 URI"):
        group_dataset_options({"datasetUri": ["https://example.com/a.zip"]})


def test_dataset_id_source() -> None:
    (spec,) = group_dataset_options({"datasetId": ["dsr8k5qzn401lb5:klfoyy9"]})
    assert spec.id == "dsr8k5qzn401lb5:klfoyy9"
    assert spec.name == "dsr8k5qzn401lb5"
    assert spec.uri is None


def test_archive_extensions() -> None:
    assert archive_extension("a.tar.bz2") == ".tar.bz2"
    assert archive_extension("a.tbz2") == ".tbz2"
    assert archive_extension("a.gz") is None


def test_options_file_parallel_lists(tmp_path: Path) -> None:
    path = tmp_path / "opts.yaml"
    path.write_text(
        "name: exp\n"
        "datasetUri: [s3://b/a.zip, s3://b/dir/]\n"
        "datasetName: [first, null]\n"
        "datasetEtag: [abc, none]\n"
    )
    data = load_options_file(path)
    first, second = group_dataset_options(dataset_options_from_yaml(data))
    assert (first.name, first.etag) == ("first", "abc")
    assert (second.name, second.etag) == ("dir", None)


def test_options_file_dataset_objects(tmp_path: Path) -> None:
    path = tmp_path / "opts.yaml"
    path.write_text(
        "datasets:\n"
        "  - uri: s3://b/a.zip\n"
        "    name: first\n"
        "    awsEndpoint: http://127.0.0.1:9000\n"
        "    volumeKind: dynamic\n"
        "    volumeSize: 1Mi\n"
        "  - id: dsr8k5qzn401lb5:latest\n"
        "    name: second\n"
    )
    specs: list[DatasetSpec] = group_dataset_options(dataset_options_from_yaml(load_options_file(path)))
    assert [s.name for s in specs] == ["first", "second"]
    assert specs[0].aws_endpoint == "http://127.0.0.1:9000"
    assert specs[0].dynamic_size == 2**20
    assert specs[1].id == "dsr8k5qzn401lb5:latest"


def test_options_file_unknown_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown key"):
        dataset_options_from_yaml({"datasets": [{"uri": "s3://b/a", "bucket": "x"}]})
