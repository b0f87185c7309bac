import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsNotEmpty, IsOptional, IsString, MaxLength } from 'class-validator';

export class RegisterModelDto {
  @ApiProperty({ description: 'Absolute path of a Hugging Face model directory under one of MODEL_ROOTS', example: '/models/Qwen2-0.5B' })
  @IsString()
  @IsNotEmpty()
  @MaxLength(4096)
  path!: string;

  @ApiPropertyOptional({ description: 'Display name (default: the directory name)' })
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  name?: string;
}
