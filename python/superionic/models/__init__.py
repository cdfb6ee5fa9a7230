"""Model families. Every model conforms to ``ContractModel`` and deploys through the same pair style."""

from superionic.models.contract import ContractModel
from superionic.models.reference import ReferenceMessagePassing, ReferencePotential

__all__ = ["ContractModel", "ReferenceMessagePassing", "ReferencePotential"]
