"""validate_data: pandera validation of the input table against the feature contract."""
from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Markdown, Output

from components.image import component


@component
def validate_data(
    data_uri: str,
    schema_uri: str,
    validated: Output[Dataset],
    report: Output[Markdown],
    failure_cases: Output[Artifact],
) -> NamedTuple("ValidationOutputs", rows=int, data_sha256=str):
    """Validate `data_uri` against the contract; on failure, fail naming each column, check and values."""
    from components import contract, dataio, memory
    from components.validate import logic

    df, data_sha256 = dataio.read_table_and_sha256(data_uri)
    try:
        clean, result = logic.validate(df, contract.load(schema_uri), source=data_uri)
    except logic.ValidationFailed as failed:
        failed.report.write(report.path, failure_cases.path)
        print(failed.report.to_markdown())  # the step's log: KFP uploads no outputs of a failed step
        raise
    result.write(report.path, failure_cases.path)
    print(result.to_markdown())
    dataio.write_table(clean, validated.path)
    validated.metadata.update({"rows": len(clean), "source": data_uri})
    memory.report()
    return (len(clean), data_sha256)
