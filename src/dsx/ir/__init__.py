"""The dsx IR: pydantic models for a whole program unit, versioned, with a JSON round trip.

The IR is what everything after the front end consumes: ``instantiate`` builds runtime
objects from it, codegen writes Python from it, optimizers attach learned state to it.
It depends on pydantic only.
"""

from __future__ import annotations

from dsx.ir._models import (
    IR_VERSION,
    Attr,
    BinOp,
    Call,
    Check,
    Const,
    DataSet,
    Dict,
    Enum,
    EnumMember,
    Expr,
    ExprStmt,
    Field,
    For,
    Forward,
    FString,
    If,
    Index,
    Learned,
    LearnedPredictor,
    List,
    Loc,
    Metric,
    Module,
    Name,
    Optimize,
    Param,
    Program,
    PythonImport,
    Record,
    RecordField,
    Return,
    Assign,
    Signature,
    Stmt,
    Submodule,
    Test,
    TypeRef,
    Unary,
    Unit,
    build,
)

__all__ = [
    "IR_VERSION", "Assign", "Attr", "BinOp", "Call", "Check", "Const", "DataSet", "Dict",
    "Enum", "EnumMember", "Expr", "ExprStmt", "FString", "Field", "For", "Forward", "If",
    "Index", "Learned", "LearnedPredictor", "List", "Loc", "Metric", "Module", "Name",
    "Optimize", "Param", "Program", "PythonImport", "Record", "RecordField", "Return",
    "Signature", "Stmt", "Submodule", "Test", "TypeRef", "Unary", "Unit", "build",
]
