"""Metadata keys of an exported artefact (TorchScript extra file ``metadata.json``)."""

METADATA_FILE = "metadata.json"
FORMAT = "painn-deploy-torchscript"
# the only format loaded: batched positions, features and responses per molecule, hand-written forces, errors
# raised by the method called (evaluate_or_error for wrappers), energies summed and returned in float64
FORMAT_VERSION = 8

# keys (the artefact describes itself; nobody needs the training code to use it)
KEY_FORMAT = "format"
KEY_FORMAT_VERSION = "format_version"
KEY_ATOMIC_NUMBERS = "atomic_numbers"  # particle order
KEY_ELEMENTS = "elements"  # symbols in particle order
KEY_MODEL_ELEMENTS = "model_elements"  # elements the model knows
KEY_ATOM_INDICES = "atom_indices"  # the model's atoms among the system's particles (ML/MM), or None: all of them
KEY_N_PARTICLES = "n_particles"  # particles the artefact takes positions for
KEY_PARTICLE_ATOMIC_NUMBERS = "particle_atomic_numbers"  # of every particle
KEY_N_MOLECULES = "n_molecules"  # molecules among the model's atoms (dipole and polarizability are their sums)
KEY_CUTOFF_NM = "cutoff_nm"
KEY_PERIODIC = "periodic"
KEY_DTYPE = "dtype"
KEY_HEADS = "heads"
KEY_UNITS = "units"
KEY_NEIGHBOR_LIST = "neighbor_list"
KEY_FORCES = "forces"  # the gradient strategy (painn_deploy.model.strategy)
KEY_FIXED_SHAPES = "fixed_shapes"  # no shape depends on the positions (CUDA graphs, torch.export)
KEY_PAIR_CAPACITY = "pair_capacity"
KEY_N_FEATURES = "n_features"
KEY_VERSIONS = "versions"
KEY_MODEL = "model"  # hyperparameters
KEY_TRAINING = "training"  # provenance: data hash, split sizes, test errors
KEY_VALIDATION = "validation"  # export-time report
KEY_CHECKPOINT_SHA256 = "checkpoint_sha256"
KEY_ENVELOPE = "training_envelope"  # interatomic distances seen in the training data (deploy/envelope.py)
