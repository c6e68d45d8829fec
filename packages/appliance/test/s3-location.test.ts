/** An S3 repository's location names its bucket, prefix, access key id, endpoint and region; anything else is refused. */
import { describe, expect, it } from 'vitest';
import { parseS3Location, RepositoryLocationError } from '../src/repositories.ts';

describe('S3 repository locations', () => {
  it('reads bucket, prefix, access key id, endpoint and region', () => {
    expect(parseS3Location('s3://AKIA123@backups/site-a/vaultline?endpoint=http%3A%2F%2F127.0.0.1%3A7480&region=eu-west-1')).toEqual({
      bucket: 'backups',
      prefix: 'site-a/vaultline',
      accessKeyId: 'AKIA123',
      endpoint: 'http://127.0.0.1:7480',
      region: 'eu-west-1',
    });
    expect(parseS3Location('s3://AKIA123@backups')).toEqual({ bucket: 'backups', prefix: '', accessKeyId: 'AKIA123', region: 'us-east-1' });
  });

  it('refuses a location without a bucket or access key id, another scheme, or an endpoint that is not http(s)', () => {
    for (const bad of ['s3://backups/x', 'sftp://a@b/c', 'not a url', 's3://AKIA@backups/x?endpoint=file%3A%2F%2F%2Fetc']) {
      expect(() => parseS3Location(bad), bad).toThrow(RepositoryLocationError);
    }
  });
});
