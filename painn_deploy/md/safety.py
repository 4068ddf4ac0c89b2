"""The safety net of a run: it stops with :class:`SimulationInstabilityError` when the trajectory goes bad
(non-finite energies, exploding forces or temperatures, atoms flying apart), and compares the model's atoms
with the interatomic distances of its training data (the artefact's training envelope): a
:class:`SimulationWarning` as soon as they leave them, a stop beyond ``--envelope-margin``."""

import warnings
from pathlib import Path
from typing import Optional

import numpy as np

from .. import units
from ..deploy import metadata as md
from ..deploy.envelope import EnvelopeCheck, describe
from ..elements import symbol
from ..errors import InputError, SimulationInstabilityError, SimulationWarning
from .config import SimulationConfig
from .rpmd import Layout

NEAREST_NEIGHBOUR_LIMIT_NM = 0.5  # an atom with no other atom within 5 A has flown off
ENVELOPE_WARN_STEP_ANGSTROM = 0.05  # warn again about a distance once it is this much further out
ENVELOPE_WARNINGS = 10  # excursion warnings of a run said one by one; the summary counts the rest
DRIFT_OF_KINETIC = 0.25  # NVE: warn when the conserved energy drifts by more than this part of the kinetic energy


def _angstrom(box_nm):
    return None if box_nm is None else np.asarray(box_nm) * units.ANGSTROM_PER_NM


class SafetyNet:
    """Checks of one run.  ``model_atoms``: the model's atoms among the structure's (None: all of them);
    ``layout``: the run's copies of the molecule (replicas, beads; whichever integrator moves them), named in
    messages; ``checkpoint``: the checkpoint a stop keeps, named in its message.  ``phase`` ("equilibration " while
    the runner equilibrates) goes before the step in messages."""

    def __init__(self, cfg: SimulationConfig, artefact, atomic_numbers, model_atoms: Optional[list], layout: Layout,
                 periodic: bool, checkpoint: Path):  # fmt: skip
        self.cfg, self.layout, self.periodic, self.checkpoint = cfg, layout, periodic, checkpoint
        self.atomic_numbers, self.model_atoms = list(atomic_numbers), model_atoms
        self.envelope, self.warned, self.checks, self.outside, self.furthest = None, {}, 0, 0, None
        self.n_warnings = 0
        self.drift_reference: Optional[tuple] = None  # NVE: (step, conserved energy) of the first log row
        self.phase = ""
        self.envelope_record = artefact.metadata.get(md.KEY_ENVELOPE)
        self.artefact_path = artefact.path

    # ---- instabilities -------------------------------------------------------------------------------------
    def check(self, step: int, where: str, energy: float, max_force: float, temperature: float, positions_nm=None):
        """Stop when the energy is not finite, a force or the temperature exceeds its limit, or (molecules) an
        atom of ``positions_nm`` [..., N, 3] has no other atom within NEAREST_NEIGHBOUR_LIMIT_NM."""
        cfg = self.cfg
        reason, limit = None, ""
        if not np.isfinite(energy):
            reason = f"the potential energy is {energy}"
        elif not np.isfinite(max_force) or max_force > cfg.max_force_kj_per_mol_nm:
            reason = (
                f"a force of {max_force:.3g} kJ/mol/nm exceeds {cfg.max_force_kj_per_mol_nm:.3g} (exploding forces)"
            )
            limit = " or, if it is too strict, raise --max-force" if np.isfinite(max_force) else ""
        elif not np.isfinite(temperature) or temperature > cfg.temperature_limit_K:
            reason = f"the temperature {temperature:.1f} K exceeds {cfg.temperature_limit_K:.0f} K"
            limit = " or, if it is too strict, raise --max-temperature" if np.isfinite(temperature) else ""
        elif positions_nm is not None and not self.periodic and positions_nm.shape[-2] > 1:
            from scipy.spatial import cKDTree

            for copy, molecule in enumerate(np.asarray(positions_nm).reshape(-1, positions_nm.shape[-2], 3)):
                dist, _ = cKDTree(molecule).query(molecule, k=2)
                far = int(np.argmax(dist[:, 1]))
                if dist[far, 1] > NEAREST_NEIGHBOUR_LIMIT_NM:
                    which = f" of replica {copy}" if self.layout.replicas > 1 else ""
                    reason = (
                        f"atom {far + 1}{which} is {dist[far, 1]:.2f} nm from every other atom (atoms flying apart)"
                    )
                    break
        if reason:
            self.stop(step, where, reason, "check the structure, lower --timestep, or use a model trained on "
                      f"configurations like these{limit}")  # fmt: skip

    def stop(self, step: int, where: str, reason: str, advice: str):
        kept = (
            f"The last good checkpoint {self.checkpoint} is kept"
            if self.checkpoint.is_file()
            else "No checkpoint was written (the run stopped before its first)"
        )
        raise SimulationInstabilityError(
            f"simulation stopped at {self.phase}step {step} ({where}): {reason}. {kept}; {advice}."
        )

    # ---- the training data's envelope ----------------------------------------------------------------------
    def check_start(self, positions_nm: np.ndarray, box_nm) -> None:
        """Set up the envelope check and check the starting structure [N, 3] (all atoms): beyond the margin it
        is refused."""
        cfg, envelope = self.cfg, self.envelope_record
        if not envelope or not envelope.get("source"):
            warnings.warn(
                f"the model {self.artefact_path} does not record the interatomic distances of its training data, so "
                f"this run cannot warn when it leaves them; a model trained and exported with this painn-deploy has "
                f"the check",
                SimulationWarning, stacklevel=4,
            )  # fmt: skip
            return
        z = np.asarray(self.atomic_numbers)
        self.envelope = EnvelopeCheck(envelope, z if self.model_atoms is None else z[np.asarray(self.model_atoms)])
        if envelope["source"] != "training data":
            warnings.warn(
                f"the model's record of its training data's distances comes from {envelope.get('frames')}: "
                f"expect warnings about distances the full training data did cover",
                SimulationWarning, stacklevel=4,
            )  # fmt: skip
        if self.envelope.unseen_pairs:
            warnings.warn(
                f"{cfg.structure} has pairs of elements ({', '.join(self.envelope.unseen_pairs)}) that never came "
                f"within the model's cutoff ({self.envelope.cutoff:g} Angstrom) in its training data: wherever two "
                f"such atoms come that close, the model's forces between them are extrapolated",
                SimulationWarning, stacklevel=4,
            )  # fmt: skip
        frames = positions_nm if self.model_atoms is None else positions_nm[np.asarray(self.model_atoms)]
        for excursion in self.envelope.excursions(frames * units.ANGSTROM_PER_NM, _angstrom(box_nm)):
            text = self._describe(excursion, start=True)
            if excursion.beyond > self._allowed(excursion):
                raise InputError(
                    f"{cfg.structure}: {text}, beyond the margin of {self._margin_text()} (--envelope-margin): the "
                    f"model was not trained on such structures. Check the structure, or give --envelope-margin inf "
                    f"to run it anyway"
                )
            warnings.warn(f"the starting structure is outside the model's training data: {text}", SimulationWarning,
                          stacklevel=4)  # fmt: skip

    def check_envelope(self, step: int, frames_nm: np.ndarray, box_nm) -> None:
        """Warn when the frames ([F, N, 3] nm, every atom of every copy) leave the training data's distances, with
        the atoms and by how much; stop beyond the margin."""
        if self.envelope is None:
            return
        if self.model_atoms is not None:
            frames_nm = frames_nm[:, np.asarray(self.model_atoms)]
        self.checks += 1
        excursions = self.envelope.excursions(frames_nm * units.ANGSTROM_PER_NM, _angstrom(box_nm))
        if not excursions:
            return
        self.outside += 1
        if self.furthest is None or excursions[0].beyond > self.furthest[0].beyond:
            self.furthest = (excursions[0], f"{self.phase}step {step}")
        for e in excursions:
            if e.beyond > self._allowed(e):
                self.stop(step, "log", f"the configuration left the model's training data: {self._describe(e)}, "
                          f"beyond the margin of {self._margin_text()} (--envelope-margin)",
                          "the model has not seen such configurations and its forces there cannot be trusted: lower "
                          "--temperature or --timestep, use a model trained on data that covers them, or raise "
                          "--envelope-margin to go on at your own risk")  # fmt: skip
        for e in excursions:
            warned = self.warned.get(e.key)
            if warned is None or e.beyond >= warned + ENVELOPE_WARN_STEP_ANGSTROM:
                self.warned[e.key] = e.beyond
                self.n_warnings += 1
                if self.n_warnings > ENVELOPE_WARNINGS:
                    continue
                if self.n_warnings == ENVELOPE_WARNINGS:
                    warnings.warn(
                        f"{self.phase}step {step}: outside the model's training data again ({self._describe(e)}); "
                        f"after {ENVELOPE_WARNINGS} such warnings, further ones are counted in the run's summary",
                        SimulationWarning, stacklevel=4,
                    )  # fmt: skip
                    continue
                allowed = self._allowed(e)
                warnings.warn(
                    f"{self.phase}step {step}: outside the model's training data: {self._describe(e)}; "
                    + (f"the run stops {allowed:.2f} Angstrom beyond (--envelope-margin)" if np.isfinite(allowed)
                       else "the run goes on however far it goes (--envelope-margin)" if e.bonded
                       else "not a bond in the training data, so the run goes on"),
                    SimulationWarning, stacklevel=4,
                )  # fmt: skip

    def check_drift(self, step: int, conserved_kj_mol: float, kinetic_kj_mol: float) -> None:
        """NVE (--integrator verlet): warn once when the conserved energy (the total energy, or the ring polymer's
        Hamiltonian) has drifted from its first logged value by more than DRIFT_OF_KINETIC of the kinetic energy
        ``kinetic_kj_mol`` expected at the temperature: a time step too large for the model's forces, or a rough
        energy surface, that no other check sees while the run stays in its data."""
        if self.drift_reference is None:
            self.drift_reference = (step, conserved_kj_mol)
            return
        start, reference = self.drift_reference
        drift = conserved_kj_mol - reference
        if np.isfinite(drift) and abs(drift) > DRIFT_OF_KINETIC * kinetic_kj_mol and start >= 0:
            self.drift_reference = (-1, reference)  # (warned: once per run)
            warnings.warn(
                f"step {step}: the conserved energy of this NVE run has drifted by {drift:+.3g} kJ/mol since step "
                f"{start}, more than {DRIFT_OF_KINETIC:.0%} of the kinetic energy ({kinetic_kj_mol:.3g} kJ/mol): "
                "the time step is too large for the model's forces, or its energy surface is rough here; lower "
                "--timestep",
                SimulationWarning, stacklevel=4,
            )  # fmt: skip

    def summary(self) -> str:
        """How often and how far the run left the training data's distances ("" when never)."""
        if not self.outside:
            return ""
        e, when = self.furthest
        return (
            f"{self.outside} of {self.checks} checked configurations (every --log-interval steps) were outside the "
            f"model's training data; the furthest, at {when}: {self._describe(e)}"
        )

    def _allowed(self, excursion) -> float:
        """How far beyond the data a run may go: the margin for a bond (``Excursion.bonded``), else no limit."""
        if not excursion.bonded:
            return np.inf
        value, fraction = self.cfg.margin
        return value * excursion.bound if fraction else value

    def _margin_text(self) -> str:
        value, fraction = self.cfg.margin
        return f"{value * 100:g}% of the distance" if fraction else f"{value:g} Angstrom"

    def _describe(self, e, start: bool = False) -> str:
        """An excursion in words, with the structure's atom numbers (1-based) and, for a run's copies, the
        replica and bead."""
        atoms = [(self.model_atoms[i] if self.model_atoms is not None else i) + 1 for i in e.atoms]
        elements = [symbol(self.atomic_numbers[a - 1]) for a in atoms]
        where = ""
        if not start and self.layout.n_frames > 1:
            replica, bead = divmod(e.frame, self.layout.beads)
            parts = ([f"replica {replica}"] if self.layout.replicas > 1 else []) + (
                [f"bead {bead}"] if self.layout.beads > 1 else []
            )
            where = f" ({', '.join(parts)})"
        return describe(e, atoms, elements, where)
