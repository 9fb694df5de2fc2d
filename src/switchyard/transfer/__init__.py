"""Configuration in and out of Switchyard: the document `switchyard export` writes and
`switchyard apply -f` reads (`document`, its JSON Schema in `schema`), the plans that
turn a document or an import into one batch of writes (`plan`, `importing`)."""

__all__: list[str] = []
