"""Examples of using lakeray, not the library: the bundled pipelines' data generators
(datagen: churn, telco), a throwaway local PostgreSQL for their database silo (devtools), and
`lakeray demo` (demo, demoloop). lakeray's own packages know no pipeline by name; its jobs'
--smoke-test and `lakeray generate` take their small bundled data from here."""

DEFAULT_PIPELINES = ["pipelines/churn.yaml", "pipelines/telco.yaml"]
