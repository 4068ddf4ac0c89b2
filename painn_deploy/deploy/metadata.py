"""Metadata keys of an exported artefact (TorchScript extra file ``metadata.json``)."""

METADATA_FILE = "metadata.json"
FORMAT = "painn-deploy-torchscript"
FORMAT_VERSION = 4  # 2: forces_and_features / observables_from_features (fused recording); 3: feature tap;
# 4: energy_and_forces (TorchForce with setOutputsForces, forces by hand-written backward passes)
FUSED_FORMAT_VERSION = 2  # the first format the fused (PythonForce) MD recording can use
TAP_FORMAT_VERSION = 3  # the first format with the feature tap (TorchForce recording)
FORCES_FORMAT_VERSION = 4  # the first format with energy_and_forces (painn_deploy.openmm.ForcesOutput)

# keys (the artefact describes itself; nobody needs the training code to use it)
KEY_FORMAT = "format"
KEY_FORMAT_VERSION = "format_version"
KEY_ATOMIC_NUMBERS = "atomic_numbers"  # particle order
KEY_ELEMENTS = "elements"  # symbols in particle order
KEY_MODEL_ELEMENTS = "model_elements"  # elements the model knows
KEY_CUTOFF_NM = "cutoff_nm"
KEY_PERIODIC = "periodic"
KEY_DTYPE = "dtype"
KEY_HEADS = "heads"
KEY_UNITS = "units"
KEY_NEIGHBOR_LIST = "neighbor_list"
KEY_PAIR_CAPACITY = "pair_capacity"
KEY_RECOMPUTE_ABOVE_PAIRS = "recompute_above_pairs"  # more pairs: forces by recomputation (memory O(N))
KEY_VERSIONS = "versions"
KEY_MODEL = "model"  # hyperparameters
KEY_TRAINING = "training"  # provenance: data hash, split sizes, test errors
KEY_VALIDATION = "validation"  # export-time report
KEY_CHECKPOINT_SHA256 = "checkpoint_sha256"
