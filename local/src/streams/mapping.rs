//! The template's DynamoDB event source mapping: the SAM function whose `Events` has a `DynamoDB`
//! event on the stack's table (the publisher), read as SAM and Lambda would configure it (SAM
//! specification, "DynamoDB" event source type; Lambda API Reference, CreateEventSourceMapping:
//! BatchSize defaults to 100, MaximumRetryAttempts to -1, infinite).

use serde_norway::Value as Yaml;

use crate::cfn::Template;
use crate::error::Error;
use crate::iam::stack::{get_att, get_att_target};
use crate::pattern::Pattern;

/// Lambda's default and largest batch for a DynamoDB stream.
const DEFAULT_BATCH_SIZE: usize = 100;
const MAX_BATCH_SIZE: usize = 10_000;

/// One function's DynamoDB event, as Lambda's event source mapping runs it.
#[derive(Debug, Clone)]
pub struct StreamMapping {
    /// The function's logical id (`PublisherFunction`).
    pub function: String,
    /// The logical id of the role it runs as: Lambda reads the stream with it.
    pub role: String,
    /// The physical name of the table whose stream it reads.
    pub table: String,
    pub batch_size: usize,
    /// None: retried until it succeeds (-1).
    pub max_retries: Option<u32>,
    pub bisect_on_error: bool,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_item_failures: bool,
    /// `FilterCriteria`: a record is sent when any filter matches; none: every record.
    pub filters: Vec<Pattern>,
    /// The logical id of the on-failure destination, if any.
    pub on_failure: Option<String>,
    /// The function's `EVENT_BUS_NAME`, resolved.
    pub event_bus: Option<String>,
}

impl StreamMapping {
    /// The template's mapping, if a function has a DynamoDB event; more than one is an error
    /// (local-aws invokes one publisher).
    pub fn from_template(template: &Template) -> Result<Option<Self>, Error> {
        let mut found = Vec::new();
        for (id, function) in template.resources_of("AWS::Serverless::Function") {
            for (name, event) in function["Properties"]["Events"]
                .as_mapping()
                .into_iter()
                .flatten()
            {
                if event["Type"].as_str() == Some("DynamoDB") {
                    let name = name.as_str().unwrap_or_default();
                    found.push(Self::read(
                        template,
                        id,
                        function,
                        name,
                        &event["Properties"],
                    )?);
                }
            }
        }
        if found.len() > 1 {
            return Err(Error::Template(
                "local-aws polls one DynamoDB event source; the template has several".into(),
            ));
        }
        Ok(found.pop())
    }

    fn read(
        template: &Template,
        id: &str,
        function: &Yaml,
        event: &str,
        properties: &Yaml,
    ) -> Result<Self, Error> {
        let resolver = template.resolver();
        let what = |detail: &str| Error::Template(format!("{id}.Events.{event}: {detail}"));
        let role = get_att_target(&function["Properties"]["Role"])
            .ok_or_else(|| what("the function's Role is not !GetAtt <Role>.Arn"))?;
        let table = match get_att(&properties["Stream"]) {
            Some((table, attribute)) if attribute == "StreamArn" => resolver.reference(&table)?,
            _ => return Err(what("Stream is not !GetAtt <Table>.StreamArn")),
        };
        let starting_position = resolver.resolve_string(&properties["StartingPosition"])?;
        if starting_position != "TRIM_HORIZON" {
            return Err(what("local-aws reads a stream from TRIM_HORIZON only"));
        }
        let number = |name: &str| -> Result<Option<i64>, Error> {
            match &properties[name] {
                Yaml::Null => Ok(None),
                value => resolver
                    .resolve_string(value)?
                    .parse()
                    .map(Some)
                    .map_err(|_| what(&format!("{name} is not a number"))),
            }
        };
        let batch_size = match number("BatchSize")? {
            None => DEFAULT_BATCH_SIZE,
            Some(size) => usize::try_from(size)
                .ok()
                .filter(|size| (1..=MAX_BATCH_SIZE).contains(size))
                .ok_or_else(|| what("BatchSize is not 1 to 10000"))?,
        };
        let max_retries = match number("MaximumRetryAttempts")? {
            None | Some(-1) => None,
            Some(retries) => {
                Some(u32::try_from(retries).map_err(|_| what("MaximumRetryAttempts is below -1"))?)
            }
        };
        let flag = |name: &str| -> Result<bool, Error> {
            match resolver.resolve(&properties[name])? {
                Yaml::Null => Ok(false),
                Yaml::Bool(flag) => Ok(flag),
                Yaml::String(text) if text == "true" || text == "false" => Ok(text == "true"),
                _ => Err(what(&format!("{name} is not a boolean"))),
            }
        };
        let response_types = resolver.resolve(&properties["FunctionResponseTypes"])?;
        let report_item_failures = response_types
            .as_sequence()
            .into_iter()
            .flatten()
            .any(|kind| kind.as_str() == Some("ReportBatchItemFailures"));
        let mut filters = Vec::new();
        for filter in properties["FilterCriteria"]["Filters"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            // A pattern is JSON text; a YAML mapping is read as the same JSON.
            let pattern = match resolver.resolve(&filter["Pattern"])? {
                Yaml::String(text) => serde_json::from_str(&text)
                    .map_err(|e| what(&format!("a filter's Pattern is not JSON: {e}")))?,
                other => serde_json::to_value(&other)
                    .map_err(|e| what(&format!("a filter's Pattern: {e}")))?,
            };
            filters.push(Pattern::parse(&pattern).map_err(|e| what(&format!("a filter: {e}")))?);
        }
        let on_failure =
            get_att_target(&properties["DestinationConfig"]["OnFailure"]["Destination"]);
        let event_bus = match &function["Properties"]["Environment"]["Variables"]["EVENT_BUS_NAME"]
        {
            Yaml::Null => None,
            value => Some(resolver.resolve_string(value)?),
        };
        Ok(Self {
            function: id.to_owned(),
            role,
            table,
            batch_size,
            max_retries,
            bisect_on_error: flag("BisectBatchOnFunctionError")?,
            report_item_failures,
            filters,
            on_failure,
            event_bus,
        })
    }

    /// Whether Lambda sends `record` (Lambda's record shape) to the function.
    pub fn selects(&self, record: &serde_json::Value) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|filter| filter.matches(record))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn read_mapping(overrides: &[(&str, &str)]) -> Result<Option<StreamMapping>, Error> {
        let overrides: BTreeMap<String, String> = overrides
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        let text = include_str!("../../../template.yaml");
        StreamMapping::from_template(&Template::load(text, "us-east-1", &overrides)?)
    }

    #[test]
    fn the_publishers_event_is_read_as_lambda_configures_it() {
        let mapping = read_mapping(&[])
            .unwrap()
            .expect("the template has a publisher");
        assert_eq!(mapping.function, "PublisherFunction");
        assert_eq!(mapping.role, "PublisherFunctionRole");
        assert_eq!(mapping.table, "presign-gate-local-FilesTable");
        assert_eq!(mapping.batch_size, 100);
        assert_eq!(mapping.max_retries, Some(10));
        assert!(mapping.bisect_on_error && mapping.report_item_failures);
        assert_eq!(mapping.on_failure.as_deref(), Some("PublisherFailureQueue"));
        assert_eq!(
            mapping.event_bus.as_deref(),
            Some("presign-gate-local-files")
        );
        let record = |image: &str| json!({"dynamodb": {image: {"status": {"S": "pending"}}}});
        assert!(mapping.selects(&record("NewImage")));
        assert!(
            mapping.selects(&record("OldImage")),
            "a removed file has only its old image"
        );
        assert!(!mapping.selects(&json!({"dynamodb": {"NewImage": {"bytes": {"N": "1"}}}})));
        let shared = read_mapping(&[("EventBusName", "shared")])
            .unwrap()
            .unwrap();
        assert_eq!(
            shared.event_bus.as_deref(),
            Some("shared"),
            "an existing bus when one is named"
        );
    }

    #[test]
    fn the_repositorys_template_reads_without_or_with_a_publisher() {
        let text = include_str!("../../../template.yaml");
        let template = Template::load(text, "us-east-1", &BTreeMap::new()).unwrap();
        if let Some(mapping) = StreamMapping::from_template(&template).unwrap() {
            assert_eq!(
                mapping.event_bus.as_deref(),
                Some("presign-gate-local-files")
            );
        }
    }
}
