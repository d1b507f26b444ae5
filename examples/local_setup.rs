//! Creates the bucket and table for `make local` on the stand-ins named by the standard
//! `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL_DYNAMODB` variables. Existing ones are kept, so the
//! local data survives restarts.

use presign_gate::aws;
use presign_gate::config::Config;
use presign_gate::error::AppError;
use presign_gate::store::DynamoDbOwnershipStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let sdk = aws::lambda_sdk_config(&config).await;
    let s3 = aws::s3_client(&sdk, config.force_path_style);
    if s3
        .head_bucket()
        .bucket(&config.bucket)
        .send()
        .await
        .is_err()
    {
        s3.create_bucket().bucket(&config.bucket).send().await?;
        println!("created bucket {}", config.bucket);
    }
    let dynamodb = aws::dynamodb_client(&sdk);
    if dynamodb
        .describe_table()
        .table_name(&config.table)
        .send()
        .await
        .is_err()
    {
        let store = DynamoDbOwnershipStore::new(dynamodb, &config.table);
        store
            .create_table_with_stream()
            .await
            .map_err(|e: AppError| {
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                format!("{e}: {}", cause.unwrap_or_default())
            })?;
        println!("created table {}", config.table);
    }
    Ok(())
}
