"""Errors that lakeray reports to users: each names the file, field or setting at fault."""


class LakerayError(Exception):
    """Base class: a problem the user can fix, reported without a traceback by the CLI."""


class ConfigError(LakerayError):
    pass


class SpecError(LakerayError):
    """An invalid pipeline spec: one message per problem, each naming the file and field."""

    def __init__(self, path, problems):
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid pipeline spec {self.path} ({len(self.problems)} problem(s)):\n{lines}")


class DataQualityError(LakerayError):
    """Data broke a declared limit (e.g. too many quarantined rows). Nothing was lost."""


class SourceError(LakerayError):
    """A silo could not be read: missing credentials, unreachable database, bad path."""


class ResourceError(LakerayError):
    """The requested compute cannot be scheduled on the available cluster."""


class ServeError(LakerayError):
    """Serve started but does not answer as configured (e.g. the ingress never routed the app)."""


class GateError(LakerayError):
    """A candidate model failed the promotion gate; the CLI exits with code 3."""

    exit_code = 3

    def __init__(self, message: str, failed: list[str], result: dict | None = None):
        super().__init__(message)
        self.failed = list(failed)
        self.result = result          # the evaluation (metrics, report) of the refused candidate
        self.stages: dict = {}        # what the stages before it returned (run_ml_stages fills it in)
