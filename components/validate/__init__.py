"""validate_data: pandera validation of the input table against the feature contract."""
from kfp import dsl
from kfp.dsl import Dataset, Markdown, Output

from components.image import component


@component
def validate_data(
    data_uri: str,
    schema_uri: str,
    validated: Output[Dataset],
    report: Output[Markdown],
    failure_cases: Output[Dataset],
) -> int:
    """Validate `data_uri` against the contract; fails naming each failing column and check. Returns the row count."""
    from components import contract, dataio
    from components.validate import logic

    df = dataio.read_table(data_uri)
    try:
        clean, result = logic.validate(df, contract.load(schema_uri), source=data_uri)
    except logic.ValidationFailed as failed:
        result = failed.report
        raise
    finally:
        if "result" in locals():
            with open(report.path, "w") as fh:
                fh.write(result.to_markdown())
            with open(failure_cases.path, "w") as fh:
                fh.write(result.to_json())
    dataio.write_table(clean, validated.path)
    validated.metadata.update({"rows": len(clean), "columns": clean.shape[1]})
    return len(clean)
