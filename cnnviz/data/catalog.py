"""The downloadable datasets: titles, class names, files, checksums and HTTPS mirrors.

Kept apart from ``sources`` and ``download`` so both can use it without importing each other.
Every file carries its published hash (sha256, or the MD5 that CIFAR-10's authors publish); a download
is only ever used after its hash matched.
"""
from __future__ import annotations

from dataclasses import dataclass

# The four files of an MNIST-like dataset, in this order everywhere.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")

STANDARD_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
KMNIST_CLASSES = ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")


@dataclass(frozen=True)
class DatasetInfo:
    """One downloadable dataset.

    ``files`` maps each role in :data:`ROLES` to a file name (or, for ``layout`` "cifar-binary", the
    role "archive" to the one tar.gz); ``sha256`` and ``sizes`` map file names to their hash (of kind
    ``hash_algorithm``) and byte count (sizes only drive the progress bar); ``mirrors`` are base URLs
    tried in order, each ending in ``/``.
    """

    key: str
    title: str
    class_names: tuple[str, ...]
    files: dict[str, str]
    sha256: dict[str, str]
    sizes: dict[str, int]
    mirrors: tuple[str, ...]
    credit: str = ""
    hash_algorithm: str = "sha256"  # a hashlib name: "sha256", or "md5" where only that is published
    layout: str = "idx"  # "idx": the four IDX files; "cifar-binary": CIFAR-10's binary-version archive

    @property
    def total_bytes(self) -> int | None:
        """Bytes of all four files, or None when a size is unknown."""
        sizes = [self.sizes.get(f) for f in self.files.values()]
        return None if any(s is None for s in sizes) else sum(sizes)  # type: ignore[misc]


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        key="mnist",
        title="MNIST",
        class_names=MNIST_CLASSES,
        files=dict(STANDARD_FILES),
        sha256={
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        sizes={
            "train-images-idx3-ubyte.gz": 9_912_422,
            "train-labels-idx1-ubyte.gz": 28_881,
            "t10k-images-idx3-ubyte.gz": 1_648_877,
            "t10k-labels-idx1-ubyte.gz": 4_542,
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirror
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        credit="MNIST: Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0",
    ),
    "fashion": DatasetInfo(
        key="fashion",
        title="Fashion-MNIST",
        class_names=FASHION_CLASSES,
        files=dict(STANDARD_FILES),
        sha256={
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        sizes={
            "train-images-idx3-ubyte.gz": 26_421_880,
            "train-labels-idx1-ubyte.gz": 29_515,
            "t10k-images-idx3-ubyte.gz": 4_422_102,
            "t10k-labels-idx1-ubyte.gz": 5_148,
        },
        # The project's own S3 website is http only; GitHub serves the same files over HTTPS.
        mirrors=("https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",),
        credit="Fashion-MNIST: H. Xiao, K. Rasul, R. Vollgraf (Zalando Research); MIT licence",
    ),
    "kmnist": DatasetInfo(
        key="kmnist",
        title="Kuzushiji-MNIST",
        class_names=KMNIST_CLASSES,
        files=dict(STANDARD_FILES),
        # Published by torchvision (prototype datasets, mnist.py), whose Fashion-MNIST values match the
        # verified ones above; not checked against a local copy, so a wrong value can only make the
        # download fail with a checksum error, never let unverified bytes through.
        sha256={
            "train-images-idx3-ubyte.gz": "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
            "train-labels-idx1-ubyte.gz": "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
            "t10k-images-idx3-ubyte.gz": "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
            "t10k-labels-idx1-ubyte.gz": "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
        },
        sizes={
            "train-images-idx3-ubyte.gz": 18_165_135,
            "train-labels-idx1-ubyte.gz": 29_497,
            "t10k-images-idx3-ubyte.gz": 3_041_136,
            "t10k-labels-idx1-ubyte.gz": 5_120,
        },
        mirrors=("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        credit="KMNIST: T. Clanuwat et al., ROIS-DS CODH / NIJL; CC BY-SA 4.0",
    ),
    "cifar10": DatasetInfo(
        key="cifar10",
        title="CIFAR-10",
        class_names=CIFAR10_CLASSES,
        files={"archive": CIFAR10_ARCHIVE},
        # The MD5 published on https://www.cs.toronto.edu/~kriz/cifar.html for the binary version, whose
        # records are read as bytes (the python version would have to be unpickled).
        sha256={CIFAR10_ARCHIVE: "c32a1d4ab5d03f1284b67883e8d87530"},
        sizes={CIFAR10_ARCHIVE: 170_052_171},
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        credit="CIFAR-10: A. Krizhevsky, V. Nair, G. Hinton (2009), University of Toronto",
        hash_algorithm="md5",
        layout="cifar-binary",
    ),
}
